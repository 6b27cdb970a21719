package My::Suite::AWS_Key_Management;

@ISA = qw(My::Suite);

# The suite needs the plugin under test: scripts/test.sh sets
# AWS_KEY_MANAGEMENT_SO and --plugin-dir. It counts a skip as a failure.
return "AWS_KEY_MANAGEMENT_SO is not set (run: make test)"
  unless $ENV{AWS_KEY_MANAGEMENT_SO};

bless { };
