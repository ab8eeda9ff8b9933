#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# test_tool: the `vmo` command-line tool, run as ctest does:
#   bash tests/test_tool.sh BUILD_DIR
# demo exits 0 with its OK line (also under a --budget, with --write-pct
# writes, with --dirty-async); cat of real files equals the files (cmp);
# sum prints what `xxhsum -H3` prints for the same files, and `xxhsum -c`
# accepts it (also in the tool's own --reference mode over plain pread(2));
# --json of demo, info and server is one valid JSON object with the right
# numbers; the progress line shows on a terminal (script(1) gives one) and
# never otherwise; bad arguments exit 2 with a message naming the argument,
# failed operations (a missing file, a failing pager, output that cannot be
# written) exit 1, never a crash.  Exit 77 (skip) without userfaultfd.
set -uo pipefail

build=${1:?usage: test_tool.sh BUILD_DIR}
vmo=$build/vmo
[ -x "$vmo" ] || { echo "FAIL: $vmo not built"; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/vmo-test-tool-XXXXXX")
nbd_pid= vmod_pid=
trap '[ -n "$nbd_pid$vmod_pid" ] && kill $nbd_pid $vmod_pid 2>/dev/null; rm -rf "$tmp"' EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

# --- help, and skip when userfaultfd cannot be had -------------------------
for args in "help" "--help" "-h"; do
  out=$("$vmo" $args 2>&1) || fail "vmo $args: exit $?"
  grep -q "^usage: vmo COMMAND" <<<"$out" || fail "vmo $args: no usage text"
done
# no command at all: a usage error, the usage on standard error only
out=$("$vmo" 2>"$tmp/err"); rc=$?
[ $rc -eq 2 ] && [ -z "$out" ] && grep -q "^usage: vmo COMMAND" "$tmp/err" ||
  fail "vmo alone: exit $rc, stdout '$out', expected 2 and the usage on stderr"
"$vmo" cat --help | grep -q "^usage: vmo cat" || fail "vmo cat --help"
"$vmo" help cat | grep -q "^usage: vmo cat" || fail "vmo help cat"
"$vmo" help nosuch >/dev/null 2>&1; [ $? -eq 2 ] || fail "vmo help nosuch: not exit 2"
"$vmo" help cat extra >/dev/null 2>&1; [ $? -eq 2 ] || fail "vmo help cat extra: not exit 2"
# output that cannot be written is a failure (1), not a silent success
if [ -w /dev/full ]; then
  "$vmo" help >/dev/full 2>/dev/null; rc=$?
  [ $rc -eq 1 ] || fail "vmo help >/dev/full: exit $rc, expected 1"
fi

# json_check FILE PYTHON-EXPRESSION...: FILE is one valid JSON object
# (python3 -m json.tool) and each expression over it (d; os) is true
json_check() {
  local f=$1; shift
  if ! python3 -m json.tool "$f" >/dev/null 2>"$tmp/jerr"; then
    fail "$f: not valid JSON: $(cat "$tmp/jerr")"; head -c 2000 "$f"; return 1
  fi
  python3 - "$f" "$@" 2>"$tmp/jerr" <<'EOF' || { fail "$f: $(cat "$tmp/jerr")"; return 1; }
import json, os, sys
with open(sys.argv[1], encoding="utf-8") as f:
    d = json.load(f)
bad = [e for e in sys.argv[2:] if not eval(e, {"d": d, "os": os})]
if bad:
    sys.exit("false: " + "; ".join(bad))
EOF
}
"$vmo" --version | grep -qE "^vmo [0-9]+\.[0-9]+\.[0-9]+ \(libvmo [0-9]+\.[0-9]+\.[0-9]+\)$" || fail "vmo --version"

# --- vmo info as an unprivileged user: no full userfaultfd there (unless the
# machine allows one), and it says what system calls will do
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
  cp "$vmo" "$tmp/vmo-nobody" && chmod 755 "$tmp" "$tmp/vmo-nobody"
  out=$(setpriv --reuid=65534 --regid=65534 --clear-groups "$tmp/vmo-nobody" info 2>&1); rc=$?
  if [ $rc -eq 0 ]; then
    grep -q "^system calls: " <<<"$out" || fail "vmo info (nobody): no 'system calls:' line"
    setpriv --reuid=65534 --regid=65534 --clear-groups "$tmp/vmo-nobody" info --json >"$tmp/info-nobody.json" 2>/dev/null ||
      fail "vmo info --json (nobody): exit $?"
    # without the sysctl nor the device, an unprivileged user has only a
    # user-mode-only userfaultfd
    if [ "$(cat /proc/sys/vm/unprivileged_userfaultfd 2>/dev/null)" != 1 ] &&
       ! setpriv --reuid=65534 --regid=65534 --clear-groups test -w /dev/userfaultfd; then
      grep -q "FAILS with EFAULT" <<<"$out" || fail "vmo info (nobody): should say system calls fail with EFAULT"
      json_check "$tmp/info-nobody.json" 'd["userfaultfd"]["available"] is True' 'd["syscalls_wait"] is False'
    else
      json_check "$tmp/info-nobody.json" 'd["userfaultfd"]["available"] is True'
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

# --- info --json: the same facts; a string with quotes, backslashes, control
# characters and bytes that are not UTF-8 (VMO_DISABLE, echoed) escaped
"$vmo" info --json >"$tmp/info.json" || fail "vmo info --json: exit $?"
minor=False; grep -qE "^ *yes +minor " "$tmp/info" && minor=True
json_check "$tmp/info.json" 'd["userfaultfd"]["available"] is True' "d['kernel']['release'] == '$(uname -r)'" \
  "d['features']['minor'] is $minor" 'd["page_sizes"]["max"] == 2097152 and type(d["page_sizes"]["max"]) is int' \
  "d['vmo_disable'] == (os.environ.get('VMO_DISABLE') or None)" 'len(d["features"]) >= 10 and all(type(v) is bool for v in d["features"].values())'
VMO_DISABLE=$'x"y\\z\n\t\001\377\303\251' "$vmo" info --json >"$tmp/info2.json" 2>/dev/null ||
  fail "vmo info --json with VMO_DISABLE: exit $?"
json_check "$tmp/info2.json" 'd["vmo_disable"] == "x\"y\\z\n\t\x01\ufffd\u00e9"'

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

# demo --json: one object on standard output and nothing else, numbers as
# numbers, every page verified; the human text stays the default (above)
"$vmo" demo --json --size 4M --page-size 16K --write-pct 10 >"$tmp/demo.json" 2>"$tmp/err" ||
  fail "vmo demo --json: exit $?: $(cat "$tmp/err")"
json_check "$tmp/demo.json" 'd["ok"] is True' 'd["size"] == 4194304' 'd["page_size"] == 16384' \
  'd["verified"] == {"pages": 256, "mismatched": 0}' 'd["write_pct"] == 10 and d["random"]["pages_written"] > 0' \
  'd["object_stats"]["faults"] > 0 and type(d["object_stats"]["resident"]) is int' \
  'd["writeback"]["ok"] is True and d["return"]["reread_ok"] is True and d["file"]["ok"] is True' \
  'type(d["random"]["ms"]) in (int, float) and d["sequential"]["pages"] == 128' \
  'list(d)[-1] == "ok" and d["kernel_features"]["minor"] in (True, False)'
# under a budget: the most it held is within it (plus one reclaim batch)
"$vmo" demo --json --size 16M --budget 4M >"$tmp/demo.json" 2>"$tmp/err" || fail "vmo demo --json --budget: exit $?"
json_check "$tmp/demo.json" 'd["ok"] is True' 'd["budget"] == 4 << 20' \
  'd["budget_run"]["max_resident"] <= (4 << 20) + (2 << 20)' 'd["object_stats"]["evictions"] > 0'

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

# --- sum: XXH3 as xxhsum -H3 prints it, checked by xxhsum -c -------------
if command -v xxhsum >/dev/null; then
  for f in odd tiny empty big; do
    got=$("$vmo" sum "$tmp/$f" 2>"$tmp/err") || { fail "vmo sum $f: exit $?"; continue; }
    want=$(xxhsum -H3 "$tmp/$f" 2>/dev/null)
    [ "$got" = "$want" ] || fail "vmo sum $f: '$got', xxhsum -H3 gives '$want'"
    ref=$("$vmo" sum --reference "$tmp/$f") || fail "vmo sum --reference $f: exit $?"
    [ "$ref" = "$want" ] || fail "vmo sum --reference $f: '$ref', xxhsum -H3 gives '$want'"
    if [ "$f" != empty ]; then
      grep -q "pages read" "$tmp/err" || fail "vmo sum $f: no stats on stderr"
    fi
  done
  # several files, a line each, and xxhsum -c agrees with every one
  (cd "$tmp" && "$vmo" sum odd tiny empty big 2>/dev/null >sums) || fail "vmo sum FILE...: exit $?"
  [ "$(wc -l <"$tmp/sums")" -eq 4 ] || fail "vmo sum of 4 files: $(wc -l <"$tmp/sums") lines"
  (cd "$tmp" && xxhsum -c sums >"$tmp/check" 2>&1) || fail "xxhsum -c rejects vmo sum's output: $(cat "$tmp/check")"
  [ "$(grep -c ': OK$' "$tmp/check")" -eq 4 ] || fail "xxhsum -c: $(cat "$tmp/check")"
  # and a wrong sum is caught: the check can fail
  head -1 "$tmp/sums" | sed -E 's/= [0-9a-f]{16}$/= 0123456789abcdef/' >"$tmp/badsums"
  (cd "$tmp" && xxhsum -c badsums >/dev/null 2>&1) && fail "xxhsum -c accepted a wrong sum"
  got=$("$vmo" sum --page-size 64K --no-readahead "$tmp/odd" 2>/dev/null) || fail "vmo sum --page-size 64K: exit $?"
  [ "$got" = "$(xxhsum -H3 "$tmp/odd")" ] || fail "vmo sum --page-size 64K differs from xxhsum -H3"
else
  fail "xxhsum not installed (scripts/deps.sh installs the xxhash package)"
fi
[ "$("$vmo" sum "$tmp/empty" 2>/dev/null)" = "XXH3 ($tmp/empty) = 2d06800538d394c2" ] ||
  fail "vmo sum of an empty file is not XXH3's of nothing (2d06800538d394c2)"
# a file that cannot be read is said, the others still summed, exit 1
out=$("$vmo" sum "$tmp/tiny" "$tmp/nonexistent" "$tmp/odd" 2>"$tmp/err"); rc=$?
[ $rc -eq 1 ] || fail "vmo sum with a missing file: exit $rc, expected 1"
[ "$(grep -c '^XXH3 ' <<<"$out")" -eq 2 ] || fail "vmo sum with a missing file: the others not summed: $out"
grep -q "nonexistent" "$tmp/err" || fail "vmo sum: the missing file is not named: $(cat "$tmp/err")"

# --- progress: on a terminal only (script(1) gives one), else as forced ----
sparse=$tmp/sparse
truncate -s 256M "$sparse"
if command -v script >/dev/null; then
  # sum: lines rewritten with \r, erased at the end, the result after them
  script -qec "$vmo sum $sparse" /dev/null </dev/null >"$tmp/tty" 2>&1 || fail "vmo sum on a tty: exit $?"
  grep -qa $'\rvmo sum: reading [0-9.]* [KMG]iB of 256.0 MiB ([0-9]*%), [0-9.]* [KMG]*i*B/s' "$tmp/tty" ||
    fail "vmo sum on a tty: no progress line: $(head -c 300 "$tmp/tty" | cat -A)"
  grep -qa $'\r  *\r' "$tmp/tty" || fail "vmo sum on a tty: the progress line is not erased"
  grep -qa "^XXH3 ($sparse) = " "$tmp/tty" || fail "vmo sum on a tty: no result line"
  # --no-progress: none, even there
  script -qec "$vmo sum --no-progress $sparse" /dev/null </dev/null >"$tmp/tty" 2>&1
  grep -qa "reading" "$tmp/tty" && fail "vmo sum --no-progress on a tty: a progress line"
  # cat with its data going to a file: progress on the terminal
  script -qec "$vmo cat $sparse >$tmp/out" /dev/null </dev/null >"$tmp/tty" 2>&1 || fail "vmo cat on a tty: exit $?"
  grep -qa $'\rvmo cat: reading ' "$tmp/tty" || fail "vmo cat (output to a file) on a tty: no progress line"
  cmp -s "$sparse" "$tmp/out" || fail "vmo cat with progress: the data differs"
  # demo: each long phase has its line (forced here: the phases may be quick)
  script -qec "$vmo demo --progress --size 8M" /dev/null </dev/null >"$tmp/tty" 2>&1 || fail "vmo demo --progress: exit $?"
  for phase in "writing the data file" "random touches" "sequential scan" "verifying"; do
    grep -qa $'\rvmo demo: '"$phase " "$tmp/tty" || fail "vmo demo --progress: no '$phase' line"
  done
  grep -qa "^verified [0-9]* pages: OK" "$tmp/tty" || fail "vmo demo --progress: no OK line"
else
  fail "script(1) not found (util-linux): the progress line cannot be tested"
fi
# not a terminal: standard error has no progress at all
"$vmo" sum "$sparse" >/dev/null 2>"$tmp/err" || fail "vmo sum sparse: exit $?"
grep -qa $'\r\|reading' "$tmp/err" && fail "vmo sum without a tty: progress on stderr: $(cat -A "$tmp/err")"
"$vmo" cat "$sparse" 2>"$tmp/err" | cmp -s - "$sparse" || fail "vmo cat sparse differs"
[ -s "$tmp/err" ] && fail "vmo cat without a tty: stderr not empty: $(cat -A "$tmp/err" | head -c 300)"
"$vmo" demo --size 8M >/dev/null 2>"$tmp/err" || fail "vmo demo: exit $?"
[ -s "$tmp/err" ] && fail "vmo demo without a tty: stderr not empty: $(cat -A "$tmp/err" | head -c 300)"
# --progress forces it into a file, rewritten at most 4 times a second
t0=$(date +%s%N)
"$vmo" sum --progress "$sparse" >/dev/null 2>"$tmp/err" || fail "vmo sum --progress: exit $?"
t1=$(date +%s%N)
n=$(grep -oa $'\rvmo sum: reading' "$tmp/err" | wc -l)
max=$(( (t1 - t0) / 250000000 + 2 ))
[ "$n" -ge 1 ] && [ "$n" -le "$max" ] || fail "vmo sum --progress: $n progress lines in $(( (t1 - t0) / 1000000 )) ms (1 to $max expected)"
rm -f "$sparse"

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
bad --json info --json=1
bad --progress cat --progress --no-progress "$tmp/tiny"
bad --progress sum --progress --no-progress "$tmp/tiny"
bad --json server --json sync NAME
bad URI store --size 1M bogus:x

# --- failed operations: exit 1, a message naming what failed -------------
failed() { # expected-word args...
  local want=$1; shift
  local err rc
  err=$("$vmo" "$@" 2>&1 >/dev/null); rc=$?
  if [ $rc -ne 1 ]; then fail "vmo $*: exit $rc, expected 1 ($err)"; return; fi
  grep -qF -- "$want" <<<"$err" || fail "vmo $*: message does not name '$want': $err"
}
failed "$tmp/nonexistent" cat "$tmp/nonexistent"
failed "$tmp" cat "$tmp"
failed "$tmp/nonexistent" sum "$tmp/nonexistent"
failed "$tmp/nonexistent" sum --reference "$tmp/nonexistent"
failed /nonexistent store --size 1M file:/nonexistent/dir/x
if [ -w /dev/full ]; then
  "$vmo" cat "$tmp/odd" >/dev/full 2>"$tmp/err"; rc=$?
  [ $rc -eq 1 ] && grep -q "standard output" "$tmp/err" || fail "vmo cat >/dev/full: exit $rc: $(cat "$tmp/err")"
  "$vmo" sum "$tmp/tiny" >/dev/full 2>"$tmp/err"; rc=$?
  [ $rc -eq 1 ] && grep -q "standard output" "$tmp/err" || fail "vmo sum >/dev/full: exit $rc: $(cat "$tmp/err")"
fi
# a failing pager: every read of an NBD export fails (nbdkit's error filter);
# the tool says so and exits 1 (not a crash by SIGBUS)
if command -v nbdkit >/dev/null; then
  nbdkit -f -U "$tmp/nbd.sock" --filter=error memory 4M error-rate=100% error=EIO 2>/dev/null &
  nbd_pid=$!
  for _ in $(seq 100); do [ -S "$tmp/nbd.sock" ] && break; sleep 0.05; done
  failed "SIGBUS" store --no-progress "nbd+unix:///?socket=$tmp/nbd.sock"
  kill "$nbd_pid" 2>/dev/null; wait "$nbd_pid" 2>/dev/null; nbd_pid=
fi

# --- server --json: vmod's statistics as one object -----------------------
if [ -x "$build/vmod" ]; then
  "$build/vmod" --socket "$tmp/s.sock" --dir "$tmp/store" >"$tmp/vmod.log" 2>&1 &
  vmod_pid=$!
  for _ in $(seq 200); do grep -q "ready on" "$tmp/vmod.log" && break; sleep 0.05; done
  "$vmo" share --socket "$tmp/s.sock" --size 1M demo >/dev/null 2>&1 || fail "vmo share (for server --json): exit $?"
  "$vmo" server --socket "$tmp/s.sock" --json stats >"$tmp/srv.json" || fail "vmo server --json stats: exit $?"
  json_check "$tmp/srv.json" 'd["ok"] is True and d["name"] is None' 'd["stats"]["faults"] > 0' \
    'd["stats"]["writebacks"] >= 256 and type(d["stats"]["resident"]) is int'
  "$vmo" server --socket "$tmp/s.sock" --json stats demo >"$tmp/srv.json" || fail "vmo server --json stats demo: exit $?"
  json_check "$tmp/srv.json" 'd["ok"] is True and d["name"] == "demo" and d["size"] == 1048576' \
    'sorted(d["stats"]) == sorted(["resident", "dirty", "faults", "missing_faults", "minor_faults", "wp_faults", "pages_read", "readahead", "writebacks", "evictions", "errors", "mappings", "write_errors", "budget", "pinned", "large_fill"])'
  "$vmo" server --socket "$tmp/s.sock" --json stats nosuch >"$tmp/srv.json" 2>/dev/null; rc=$?
  [ $rc -eq 1 ] || fail "vmo server --json stats nosuch: exit $rc, expected 1"
  json_check "$tmp/srv.json" 'd == {"ok": False}'
  "$vmo" server --socket "$tmp/s.sock" --json clients >"$tmp/srv.json" || fail "vmo server --json clients: exit $?"
  json_check "$tmp/srv.json" 'd["ok"] is True and type(d["clients"]) is list'
  kill -TERM "$vmod_pid"; wait "$vmod_pid" || fail "vmod: exit $? on SIGTERM"; vmod_pid=
fi

if [ $failures -ne 0 ]; then
  echo "test_tool: $failures failures"
  exit 1
fi
echo "ok"
