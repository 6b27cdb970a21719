# smaps.awk: a process's resident memory by kind, from /proc/PID/smaps.
# Prints "KIND kB" lines (RSS). Used by bench/run.sh ("where the memory
# goes"). Kinds:
#   so.text so.rodata so.data  the library named by -v so=NAME (its r-x,
#                              r-- and rw- file mappings: code, read-only
#                              data with pclntab, relocated data)
#   so.bss                     the anonymous mapping right after it (.bss)
#   go.arena                   Go heap arenas: anonymous mappings below
#                              0x500000000000 (a c-shared Go library puts
#                              them at a random address there; the server's
#                              own mappings are at 0x55.. and 0x7f..)
#   locked                     other anonymous memory that is mlock()ed
#                              (our key slots and the C key table)
#   server.file                mariadbd's own file mappings
#   libs.file                  every other file mapping (shared libraries)
#   heap                       [heap]: malloc's main arena (brk)
#   anon                       every other anonymous mapping: malloc's
#                              thread arenas, thread stacks, the server's
#                              buffers, the Go runtime's metadata
function flush() {
  if (kind == "") return
  tot[kind] += rss
}
/^[0-9a-f]+-[0-9a-f]+ / {
  flush()
  split($1, r, "-")
  start = r[1]; stop = r[2]; perms = $2; name = $6; rss = 0; locked = 0
  if (name != "" && index(name, so) > 0) {
    kind = perms ~ /x/ ? "so.text" : perms ~ /w/ ? "so.data" : "so.rodata"
    soend = stop
  } else if (name == "" && start == soend) {
    kind = "so.bss"
  } else if (name == "" && (length(start) < 12 || substr(start, 1, 1) < "5")) {
    kind = "go.arena"
  } else if (name == "[heap]") {
    kind = "heap"
  } else if (name ~ /mariadbd$/) {
    kind = "server.file"
  } else if (name ~ /^\//) {
    kind = "libs.file"
  } else {
    kind = "anon"
  }
  next
}
/^Rss:/ { rss = $2; next }
/^Locked:/ { if ($2 > 0 && (kind == "anon" || kind == "heap")) { kind = "locked"; rss = $2 } next }
END {
  flush()
  n = split("so.text so.rodata so.data so.bss go.arena locked server.file libs.file heap anon", order, " ")
  for (i = 1; i <= n; i++) print order[i], tot[order[i]] + 0
}
