#!/bin/sh
# Run a TLS echo under strace -f and check that, during the data phase (between
# the program's two getppid() markers), no thread made a send/recv/read/write
# syscall: io_uring moved every byte. Exit 77 (skip) without strace.
set -eu
prog=$1
command -v strace >/dev/null 2>&1 || { echo "strace not installed: skipped"; exit 77; }
log=$(mktemp)
trap 'rm -f "$log"' EXIT
strace -f -qq -o "$log" \
  -e trace=read,write,readv,writev,pread64,pwrite64,send,sendto,sendmsg,recv,recvfrom,recvmsg,io_uring_enter,getppid \
  "$prog"
awk '
  /getppid\(/ { marks++; next }
  marks == 1 && /io_uring_enter\(/ { uring++ ; next }
  marks == 1 && /(^|[ ])(read|write|readv|writev|pread64|pwrite64|send|sendto|sendmsg|recv|recvfrom|recvmsg)\(/ { bad++; print "data-path syscall: " $0 }
  END {
    if (marks < 2) { print "markers not found"; exit 1 }
    printf "data phase: %d io_uring_enter calls, %d send/recv/read/write syscalls\n", uring, bad
    if (bad > 0 || uring == 0) { print "0 passed, 1 failed"; exit 1 }
    print "1 passed, 0 failed"
  }' "$log"
