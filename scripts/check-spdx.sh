#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# scripts/check-spdx.sh [--add] - every source, build and script file of the
# repository states its licence with an SPDX line in its first lines
# (LICENSE: MIT).  --add puts the line into the files that lack it (after a
# shebang), in the file's own comment style.  Run by `make check`.
set -euo pipefail
cd "$(dirname "$0")/.."
add=false
[ "${1:-}" = --add ] && add=true
tag="SPDX-License-Identifier: MIT"
bad=0
while IFS= read -r f; do
	case $f in
	*.c | *.h | *.h.in | *.map) style=c ;;
	*.sh | *.in | *.cmake | *.txt | */CMakeLists.txt | CMakeLists.txt | Makefile | bench/run | bench/plot | .ci/run | *.service | *.socket | .gitignore) style=hash ;;
	*) continue ;;
	esac
	head -n 5 "$f" | grep -q "$tag" && continue
	if ! $add; then
		echo "check-spdx: $f has no '$tag' line in its first 5 lines (scripts/check-spdx.sh --add)"
		bad=1
		continue
	fi
	if [ $style = c ]; then line="/* $tag */"; else line="# $tag"; fi
	if head -n 1 "$f" | grep -q '^#!'; then
		sed -i "1a $line" "$f"
	else
		sed -i "1i $line" "$f"
	fi
	echo "check-spdx: added to $f"
done < <(git ls-files)
[ $bad -eq 0 ] || { echo "check-spdx: FAILED" >&2; exit 1; }
$add || echo "check-spdx: ok (every source, build and script file says $tag)"
