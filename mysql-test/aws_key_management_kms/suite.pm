package My::Suite::AWS_Key_Management_KMS;

@ISA = qw(My::Suite);

# The release build against the loopback KMS emulator: scripts/test.sh
# starts the emulator and sets these. It counts a skip as a failure.
for my $v (qw(AWS_KEY_MANAGEMENT_SO AKM_KMS_ENDPOINT AKM_KMS_KEY_ID AKM_KMS_ALIAS AKM_AWS)) {
  return "$v is not set (run: make test)" unless $ENV{$v};
}

# Every server of this suite uses the emulator's loopback endpoint, and the
# plugin warns about an endpoint override at each start (kms_basic checks
# the line).
push @::global_suppressions,
  qr/AWS KMS plugin: using endpoint http:\/\/127\.0\.0\.1:[0-9]+ instead of the region's default/;

bless { };
