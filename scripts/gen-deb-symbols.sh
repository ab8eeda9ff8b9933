#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# scripts/gen-deb-symbols.sh [MAP] - print debian/libvmo0.symbols, the Debian
# symbols file of libvmo.so.0, generated from src/libvmo.map's version nodes:
# every name under a node's global: is listed as NAME@NODE with the upstream
# version that added it (node VMO_0.N: 0.N.0), and each node itself as
# NODE@NODE (the linker exports it as a symbol too).  dpkg-shlibdeps then
# gives a program built against libvmo the lowest version that has every call
# it uses, and dpkg-gensymbols (dh_makeshlibs -- -c4, debian/rules) fails the
# package build when the library exports anything else.
#   scripts/gen-deb-symbols.sh >debian/libvmo0.symbols     (after a new node or name)
# scripts/check-deb.sh checks that the file in the tree is what this prints.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
map=${1:-$root/src/libvmo.map}
[ -r "$map" ] || { echo "gen-deb-symbols: cannot read $map (give the version script's path)" >&2; exit 2; }

echo "# SPDX-License-Identifier: MIT"
echo "# Generated from src/libvmo.map by scripts/gen-deb-symbols.sh: edit the map, then run it again."
echo "libvmo.so.0 libvmo0 #MINVER#"
echo "* Build-Depends-Package: libvmo-dev"
# The same tokenizer as scripts/check-symbols.sh: comments dropped, then
# "NODE {", "global:", "local:", names and "} PARENT;" read word by word.
awk '
	{ text = text " " $0 }
	END {
		gsub(/\/\*([^*]|\*+[^*\/])*\*+\//, " ", text)
		gsub(/[{};]/, " & ", text)
		n = split(text, t, /[ \t]+/)
		node = ""; state = ""; prev = ""
		for (i = 1; i <= n; i++) {
			w = t[i]
			if (w == "") continue
			if (w == "{") {
				node = prev; state = "global"
				if (node !~ /^VMO_0\.[0-9]+$/) {
					print "gen-deb-symbols: version node \"" node "\" is not VMO_0.N " \
					      "(a 1.x release needs a new SONAME and package name: debian/control)" > "/dev/stderr"
					exit 1
				}
				ver = substr(node, 5) ".0"
				print " " node "@" node " " ver
				continue
			}
			if (w == "}") { state = ""; node = ""; prev = w; continue }
			if (w == "global:") { state = "global"; continue }
			if (w == "local:") { state = "local"; continue }
			prev = w
			if (w == ";" || state != "global" || node == "") continue
			if (w !~ /^[A-Za-z_][A-Za-z0-9_]*$/) {
				print "gen-deb-symbols: \"" w "\" under global: in " node " is not a plain name" > "/dev/stderr"
				exit 1
			}
			print " " w "@" node " " ver
		}
	}' "$map"
