#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# test_tool: the `vmo` command-line tool, run as ctest does:
#   bash tests/test_tool.sh BUILD_DIR
# demo exits 0 with its OK line (also under a --budget, with --write-pct
# writes, with --dirty-async); cat of real files equals the files (cmp);
# sum equals a checksum computed independently (python3, and the tool's own
# --reference mode over plain read(2)); bad arguments exit 2 with a message
# naming the argument, never a crash.  Exit 77 (skip) without userfaultfd.
set -uo pipefail

build=${1:?usage: test_tool.sh BUILD_DIR}
vmo=$build/vmo
[ -x "$vmo" ] || { echo "FAIL: $vmo not built"; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/vmo-test-tool-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

# --- help, and skip when userfaultfd cannot be had -------------------------
for args in "" "help" "--help" "-h"; do
  # shellcheck disable=SC2086
  out=$("$vmo" $args 2>&1) || fail "vmo $args: exit $?"
  grep -q "^usage: vmo COMMAND" <<<"$out" || fail "vmo $args: no usage text"
done
"$vmo" cat --help | grep -q "^usage: vmo cat" || fail "vmo cat --help"
"$vmo" help cat | grep -q "^usage: vmo cat" || fail "vmo help cat"
"$vmo" help nosuch >/dev/null 2>&1; [ $? -eq 2 ] || fail "vmo help nosuch: not exit 2"
"$vmo" --version | grep -qE "^vmo [0-9]+\.[0-9]+\.[0-9]+ \(libvmo [0-9]+\.[0-9]+\.[0-9]+\)$" || fail "vmo --version"

# --- vmo info as an unprivileged user: no full userfaultfd there (unless the
# machine allows one), and it says what system calls will do
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
  cp "$vmo" "$tmp/vmo-nobody" && chmod 755 "$tmp" "$tmp/vmo-nobody"
  out=$(setpriv --reuid=65534 --regid=65534 --clear-groups "$tmp/vmo-nobody" info 2>&1); rc=$?
  if [ $rc -eq 0 ]; then
    grep -q "^system calls: " <<<"$out" || fail "vmo info (nobody): no 'system calls:' line"
    # without the sysctl nor the device, an unprivileged user has only a
    # user-mode-only userfaultfd
    if [ "$(cat /proc/sys/vm/unprivileged_userfaultfd 2>/dev/null)" != 1 ] &&
       ! setpriv --reuid=65534 --regid=65534 --clear-groups test -w /dev/userfaultfd; then
      grep -q "FAILS with EFAULT" <<<"$out" || fail "vmo info (nobody): should say system calls fail with EFAULT"
    fi
  else
    grep -q "NOT AVAILABLE" <<<"$out" || fail "vmo info (nobody): exit $rc without saying why"
  fi
fi

if ! "$vmo" info >"$tmp/info" 2>&1; then
  if grep -q "NOT AVAILABLE" "$tmp/info"; then
    echo "SKIP: $(cat "$tmp/info")"
    exit 77
  fi
  fail "vmo info: $(cat "$tmp/info")"
fi
grep -q "^userfaultfd: available" "$tmp/info" || fail "vmo info: no 'available' line"

# --- demo ----------------------------------------------------------------
run_demo() {
  local out rc
  out=$("$vmo" demo "$@" 2>&1); rc=$?
  if [ $rc -ne 0 ]; then fail "vmo demo $*: exit $rc"; echo "$out"; return; fi
  grep -qE "^verified [0-9]+ pages: OK" <<<"$out" || { fail "vmo demo $*: no OK line"; echo "$out"; }
  grep -qE "^writeback: .*: OK" <<<"$out" || { fail "vmo demo $*: no writeback OK line"; echo "$out"; }
  grep -qE "^return: .*: OK" <<<"$out" || { fail "vmo demo $*: no return OK line"; echo "$out"; }
}
run_demo
run_demo --size 4M --threads 3 --page-size 64K --no-readahead
run_demo --size=8M --page-size=2M --threads=1
run_demo --size 16K

# demo under a memory budget: it evicts, the most the object held stays within
# the budget plus one reclaim batch (2 MiB), and every byte still verifies
# (pages written in the random phase are written back, evicted and re-read).
# The output is left in $out.
run_budget_demo() { # budget-bytes args...
  local budget=$1; shift
  local rc
  out=$("$vmo" demo "$@" 2>&1); rc=$?
  if [ $rc -ne 0 ]; then fail "vmo demo $*: exit $rc"; echo "$out"; return; fi
  for want in "^verified [0-9]+ pages: OK" "^writeback: .*: OK" "^return: .*: OK" \
              "^file: .*: OK" "^object stats:" "^engine stats:"; do
    grep -qE "$want" <<<"$out" || { fail "vmo demo $*: no '$want' line"; echo "$out"; return; }
  done
  local maxres evictions
  maxres=$(sed -nE 's/^budget: .*max resident observed ([0-9]+) B.*/\1/p' <<<"$out")
  [ -n "$maxres" ] || { fail "vmo demo $*: no max resident"; echo "$out"; return; }
  [ "$maxres" -le $((budget + 2 * 1024 * 1024)) ] ||
    fail "vmo demo $*: max resident $maxres B > budget $budget B + 2 MiB"
  # the first 'evictions' line is the object's
  evictions=$(sed -nE 's/^  evictions +([0-9]+) pages/\1/p' <<<"$out" | head -1)
  [ "${evictions:-0}" -gt 0 ] || { fail "vmo demo $*: no evictions under a budget"; echo "$out"; }
}
run_budget_demo $((8 << 20)) --size 32M --budget 8M
run_budget_demo $((4 << 20)) --size 32M --budget 4M --write-pct 50
grep -qE "^random: .*; [0-9]+ pages written" <<<"$out" || fail "demo --write-pct 50: no pages written"
wb=$(sed -nE 's/^  writebacks +([0-9]+) pages.*/\1/p' <<<"$out" | head -1)
[ "${wb:-0}" -ge 2048 ] || fail "demo --budget 4M --write-pct 50: only ${wb:-0} pages written back (expected >= 2048)"

# asynchronous dirty tracking, where the kernel has WP_ASYNC and PAGEMAP_SCAN;
# elsewhere exit 1 with the library's reason
if grep -qE "^ *yes +wp-async" "$tmp/info" && grep -qE "^ *yes +pagemap-scan" "$tmp/info"; then
  out=$("$vmo" demo --dirty-async --size 16M --write-pct 30 2>&1) || fail "vmo demo --dirty-async: exit $?"
  grep -qE "^verified [0-9]+ pages: OK" <<<"$out" || { fail "vmo demo --dirty-async: no OK line"; echo "$out"; }
  grep -q "without a trap" <<<"$out" || fail "vmo demo --dirty-async: does not say first writes take no trap"
  run_budget_demo $((2 << 20)) --dirty-async --size 16M --budget 2M --write-pct 50
else
  err=$("$vmo" demo --dirty-async --size 16M 2>&1 >/dev/null); rc=$?
  [ $rc -eq 1 ] || fail "vmo demo --dirty-async without kernel support: exit $rc, expected 1"
  grep -q "PAGEMAP_SCAN\|WP_ASYNC\|features" <<<"$err" || fail "vmo demo --dirty-async: no reason given: $err"
fi

# --- cat -----------------------------------------------------------------
head -c $((3 * 1024 * 1024 + 12345)) /dev/urandom >"$tmp/odd"      # not a page multiple
head -c $((40 * 1024 * 1024)) /dev/urandom >"$tmp/big"             # more than one window
head -c 100 /dev/urandom >"$tmp/tiny"
: >"$tmp/empty"

for f in odd big tiny empty; do
  "$vmo" cat "$tmp/$f" >"$tmp/out" || fail "vmo cat $f: exit $?"
  cmp -s "$tmp/$f" "$tmp/out" || fail "vmo cat $f differs from the file"
done
"$vmo" cat --page-size 2M --no-readahead "$tmp/odd" >"$tmp/out" || fail "vmo cat --page-size 2M: exit $?"
cmp -s "$tmp/odd" "$tmp/out" || fail "vmo cat --page-size 2M differs"

# a part: --offset/--length against tail|head
check_part() { # offset length file
  "$vmo" cat --offset "$1" --length "$2" "$3" >"$tmp/out" || { fail "vmo cat --offset $1 --length $2: exit $?"; return; }
  tail -c +$(($1 + 1)) "$3" | head -c "$2" >"$tmp/want"
  cmp -s "$tmp/want" "$tmp/out" || fail "vmo cat --offset $1 --length $2 differs"
}
check_part 5000 100000 "$tmp/odd"
check_part 4096 4096 "$tmp/odd"
check_part 1 1 "$tmp/tiny"
check_part 3000000 1G "$tmp/odd"              # clipped at end of file
check_part $((40 * 1024 * 1024 - 7)) 7 "$tmp/big"
check_part $((3 * 1024 * 1024 + 12345)) 5 "$tmp/odd"  # offset at end: nothing

# --- sum -----------------------------------------------------------------
fnv_py() {
  python3 - "$1" <<'EOF'
import sys
h = 0xcbf29ce484222325
with open(sys.argv[1], "rb") as f:
    for b in f.read():
        h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
print("%016x" % h)
EOF
}
have_py=0
python3 -c 'pass' 2>/dev/null && have_py=1
for f in odd tiny empty big; do
  got=$("$vmo" sum "$tmp/$f" 2>"$tmp/err") || { fail "vmo sum $f: exit $?"; continue; }
  got=${got%% *}
  [[ $got =~ ^[0-9a-f]{16}$ ]] || fail "vmo sum $f: bad output '$got'"
  ref=$("$vmo" sum --reference "$tmp/$f") || fail "vmo sum --reference $f: exit $?"
  [ "$got" = "${ref%% *}" ] || fail "vmo sum $f: $got, read(2) gives ${ref%% *}"
  if [ $have_py = 1 ] && [ "$f" != big ]; then
    py=$(fnv_py "$tmp/$f")
    [ "$got" = "$py" ] || fail "vmo sum $f: $got, python3 gives $py"
  fi
  if [ "$f" != empty ]; then
    grep -q "pages read" "$tmp/err" || fail "vmo sum $f: no stats on stderr"
  fi
done
[ "$("$vmo" sum "$tmp/empty" 2>/dev/null | cut -c1-16)" = cbf29ce484222325 ] || fail "vmo sum of an empty file is not the FNV offset basis"
got=$("$vmo" sum --page-size 64K --no-readahead "$tmp/odd" 2>/dev/null) || fail "vmo sum --page-size 64K: exit $?"
[ "${got%% *}" = "$("$vmo" sum --reference "$tmp/odd" | cut -c1-16)" ] || fail "vmo sum --page-size 64K differs"

# --- bad arguments: exit 2, a message naming the argument ----------------
bad() { # expected-word args...
  local want=$1; shift
  local err rc
  err=$("$vmo" "$@" 2>&1 >/dev/null); rc=$?
  if [ $rc -ne 2 ]; then fail "vmo $*: exit $rc, expected 2 ($err)"; return; fi
  grep -qF -- "$want" <<<"$err" || fail "vmo $*: message does not name '$want': $err"
}
bad frobnicate frobnicate
bad --size demo --size 0
bad --size demo --size 12Q
bad --size demo --size abc
bad --size demo --size -5
bad --size demo --size 99999999999999999999999
bad --size demo --size 17179869184T
bad --size demo --size ""
bad --size demo --size 4097
bad --size demo --size 8K
bad --size demo --size 1T
bad --size demo --size
bad --threads demo --threads 0
bad --threads demo --threads 65
bad --threads demo --threads 2x
bad --threads demo --threads -1
bad --page-size demo --page-size 3000
bad --page-size demo --page-size 4M
bad --page-size demo --page-size 12K
bad --budget demo --budget 0
bad --budget demo --budget 4095
bad --budget demo --budget 65M
bad --budget demo --size 4M --budget 8M
bad --budget demo --page-size 64K --size 4M --budget 32K
bad --budget demo --budget 12Q
bad --budget demo --budget -1
bad --budget demo --budget
bad --write-pct demo --write-pct 101
bad --write-pct demo --write-pct -1
bad --write-pct demo --write-pct 50%
bad --write-pct demo --write-pct ""
bad --write-pct demo --write-pct 1e2
bad --write-pct demo --write-pct
bad --dirty-async demo --dirty-async=1
bad --bogus demo --bogus
bad --no-readahead demo --no-readahead=1
bad extra demo extra
bad FILE cat
bad FILE sum
bad "$tmp/nonexistent" cat "$tmp/nonexistent"
bad "$tmp" cat "$tmp"
bad --offset cat --offset 1G "$tmp/tiny"
bad --offset cat --offset x "$tmp/tiny"
bad --offset cat --offset 18446744073709551615 "$tmp/tiny"
bad --length cat --length 0 "$tmp/tiny"
bad --length cat --length 5Z "$tmp/tiny"
bad --page-size cat --page-size 0 "$tmp/tiny"
bad "$tmp/odd" cat "$tmp/tiny" "$tmp/odd"
bad --frob sum --frob "$tmp/tiny"
bad --page-size sum --page-size 1 "$tmp/tiny"
bad extra info extra

if [ $failures -ne 0 ]; then
  echo "test_tool: $failures failures"
  exit 1
fi
echo "ok"
