#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""gen-man.py: the man pages of libvmo and of the vmo tool, from one source each.

  gen-man.py --api docs/api.md --header include/vmo.h --version X.Y.Z
             [--tool BUILD/vmo] [--pandoc pandoc] --out DIR
  gen-man.py --man1-only --tool BUILD/vmo --version X.Y.Z --out DIR
  gen-man.py --api docs/api.md --header include/vmo.h --check

Section 3, from docs/api.md (the hand-written reference, THE source) and the
prototypes of include/vmo.h:
  - one page per `###` section that documents a public call.  A section
    documents the calls its heading names in backticks (`vmo_sync`,
    `vmo_sync_range`; for a call exported as NAME_sized behind a macro NAME,
    the heading may name NAME), or, when no heading names a call, a ```c block
    of the section that declares it (`int vmo_handle_sigbus(...)`).  The page
    is named after the section's first call; each other call of the section,
    and every NAME_sized, is a `.so` link to it.
    NAME (every call of the section), SYNOPSIS (#include <vmo.h>, the
    prototypes as vmo.h declares them, how to link), DESCRIPTION (the `##`
    chapter's introduction, the section's text, then the sections of the same
    chapter it links to and the `struct X` sections of its chapter that its
    prototypes take), RETURN VALUE and THREAD SAFETY where the section says
    (its `**Returns**` paragraph and error tables, its Errors: and
    Thread-safety: items), SEE ALSO (the other calls of the same chapter).
  - vmo(3): the Conventions chapter (and what it links to) and every call,
    chapter by chapter.
  - X(3) for a chapter that documents no call but has a `### struct X`
    section (the pager contract: vmo_pager_ops(3)), the whole chapter.
  Links within api.md become the text and the page that holds the target
  ("(see vmo_map(3))"), links to the other docs name the file (docs/x.md).
Section 1, vmo(1): from the usage texts of the built tool (`vmo help`, `vmo
help CMD`): the texts the tool prints are the source.

Fails (exit 1, naming each one) when a function vmo.h declares VMO_API has no
section in docs/api.md, so that a new call without documentation breaks the
build (CMakeLists.txt runs this in ALL when pandoc is found) and CI.
"""
import argparse
import concurrent.futures
import os
import re
import subprocess
import sys

PROG = "gen-man"


def die(msg):
    print(f"{PROG}: {msg}", file=sys.stderr)
    sys.exit(1)


# --------------------------------------------------------------------------
# include/vmo.h: the VMO_API prototypes and the macros over the _sized calls

def read_header(path):
    text = open(path, encoding="utf-8").read()
    # drop comments, keep line structure irrelevant: a prototype runs from
    # VMO_API to its ';'
    nocomment = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    protos = {}
    order = []
    for m in re.finditer(r"^VMO_API\s+([^;]*?);", nocomment, flags=re.M | re.S):
        decl = " ".join(m.group(1).split())
        name = re.search(r"([A-Za-z_]\w*)\s*\(", decl).group(1)
        decl = re.sub(r"\(\s+", "(", decl)
        decl = re.sub(r"\s+\)", ")", decl)
        protos[name] = decl + ";"
        order.append(name)
    if not protos:
        die(f"{path}: no VMO_API declaration found")
    # #define NAME(args) NAME_sized(...): the plain names programs call
    macros = {}
    for m in re.finditer(r"^#define\s+([A-Za-z_]\w*)\(([^)]*)\)\s+(\w+)_sized\(", nocomment, flags=re.M):
        name, args, target = m.group(1), m.group(2), m.group(3)
        if name == target and name + "_sized" in protos:
            macros[name] = [a.strip() for a in args.split(",")]
    return protos, order, macros


def macro_proto(sized_proto, nargs):
    """int f_sized(A a, B b, size_t size); -> int f(A a, B b); (the macro's view)"""
    m = re.match(r"(.*?)(\w+)_sized\((.*)\);$", sized_proto)
    ret, name, params = m.group(1), m.group(2), m.group(3)
    plist = [p.strip() for p in params.split(",")]
    return f"{ret}{name}({', '.join(plist[:nargs])});"


def wrap_proto(decl, width=78):
    """One declaration on lines of at most width, continuation under the '('."""
    if len(decl) <= width:
        return decl
    open_at = decl.index("(") + 1
    parts = decl[open_at:].split(", ")
    lines, cur = [], decl[:open_at]
    for i, p in enumerate(parts):
        piece = p + ("," if i < len(parts) - 1 else "")
        if cur.strip() and len(cur) + len(piece) + 1 > width and cur.strip() != decl[:open_at].strip():
            lines.append(cur.rstrip())
            cur = " " * open_at + piece + " "
        else:
            cur += piece + " "
    lines.append(cur.rstrip())
    return "\n".join(lines)


# --------------------------------------------------------------------------
# docs/api.md: chapters (##) and sections (###), GitHub anchors

def anchor(title):
    """GitHub's heading id: lower case, punctuation dropped, spaces -> '-'."""
    a = title.strip().lower()
    a = re.sub(r"[^\w\- ]", "", a)
    return a.replace(" ", "-")


def plain(md):
    """A heading or line without markdown: code spans, emphasis, links."""
    s = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", md)
    s = s.replace("`", "").replace("**", "")
    return s.strip()


class Section:
    def __init__(self, level, title, line):
        self.level, self.title, self.line = level, title, line
        self.body = []          # lines after the heading, up to the next ## or ###
        self.chapter = None     # the enclosing ## Section (for a ###)
        self.sections = []      # for a ##: its ### sections
        self.funcs = []         # public calls it documents (for a ###)
        self.page = None        # page name that holds it
        self.page_section = 3

    @property
    def anchor(self):
        return anchor(self.title)

    def text(self):
        return "\n".join(self.body).strip("\n")


def parse_api(path):
    lines = open(path, encoding="utf-8").read().split("\n")
    intro, chapters, allsec = [], [], []
    cur, chap, fence = None, None, False
    anchors = {}
    for i, ln in enumerate(lines, 1):
        if ln.startswith("```"):
            fence = not fence
        m = None if fence else re.match(r"^(#{1,6})\s+(.*?)\s*$", ln)
        if m and len(m.group(1)) in (2, 3):
            s = Section(len(m.group(1)), m.group(2), i)
            if s.level == 2:
                chap = s
                chapters.append(s)
            else:
                if chap is None:
                    die(f"{path}:{i}: ### before any ## chapter")
                s.chapter = chap
                chap.sections.append(s)
            allsec.append(s)
            anchors[s.anchor] = s
            cur = s
            continue
        if m and len(m.group(1)) >= 4:
            # a #### subsection stays in its section's body, but has an anchor
            anchors[anchor(m.group(2))] = cur
        if cur is None:
            if not (m and len(m.group(1)) == 1):
                intro.append(ln)
        else:
            cur.body.append(ln)
    # a '---' rule that ends a chapter is not text
    for s in allsec:
        while s.body and s.body[-1].strip() in ("", "---"):
            s.body.pop()
    return intro, chapters, allsec, anchors


def heading_names(title):
    names = []
    for span in re.findall(r"`([^`]*)`", title):
        names += re.findall(r"[A-Za-z_]\w*", span)
    return names


def declares(section, func):
    """Does a ```c block of the section declare func (a type, then func( )?"""
    fence, block = False, []
    for ln in section.body:
        if ln.startswith("```"):
            fence = not fence
            continue
        if fence:
            block.append(ln)
    return any(re.match(rf"^\s*[A-Za-z_][\w\s\*]*\b{func}\s*\(", ln) for ln in block)


# --------------------------------------------------------------------------
# Markdown blocks: paragraphs, list items, tables, fenced code

def blocks(text):
    """Split markdown into top-level blocks: (kind, lines)."""
    out, lines, i = [], text.split("\n"), 0
    n = len(lines)
    while i < n:
        ln = lines[i]
        if not ln.strip():
            i += 1
            continue
        if ln.startswith("```"):
            j = i + 1
            while j < n and not lines[j].startswith("```"):
                j += 1
            out.append(("code", lines[i:j + 1]))
            i = j + 1
            continue
        if ln.startswith("|"):
            j = i
            while j < n and lines[j].startswith("|"):
                j += 1
            out.append(("table", lines[i:j]))
            i = j
            continue
        if re.match(r"^(- |\* |\d+\. )", ln):
            j = i + 1
            while j < n:
                if lines[j].startswith("  ") and lines[j].strip():
                    j += 1
                elif not lines[j].strip() and j + 1 < n and lines[j + 1].startswith("  "):
                    j += 1
                else:
                    break
            out.append(("item", lines[i:j]))
            i = j
            continue
        if ln.startswith("#"):
            out.append(("heading", [ln]))
            i += 1
            continue
        j = i + 1
        while (j < n and lines[j].strip() and not lines[j].startswith(("```", "|", "#"))
               and not re.match(r"^(- |\* |\d+\. )", lines[j])):
            j += 1
        out.append(("para", lines[i:j]))
        i = j
    return out


def join_blocks(bl):
    """Blocks back to markdown; consecutive items of one list stay one list."""
    out = []
    prev = None
    for kind, lines in bl:
        if out and not (kind == "item" and prev == "item"):
            out.append("")
        out += lines
        prev = kind
    return "\n".join(out)


def split_returns(text):
    """The section's text without, and its RETURN VALUE and THREAD SAFETY parts."""
    desc, ret, ts = [], [], []
    bl = blocks(text)
    take_table = False
    for kind, lines in bl:
        first = lines[0]
        if kind == "para" and re.match(r"^(\*\*Returns?\*\*|Errors?:|\*\*Errors?:?\*\*)", first):
            ret.append((kind, lines))
            take_table = first.rstrip().endswith(":")
            continue
        if kind == "table":
            hdr = first.strip("|").split("|")[0].strip().lower()
            if take_table or "error" in hdr:
                ret.append((kind, lines))
                take_table = False
                continue
        take_table = False
        if kind == "item" and re.match(r"^- (\*\*Errors?:?\*\*|Errors?:)", first):
            ret.append((kind, lines))
            continue
        if kind == "item" and re.match(r"^- \*\*Thread-safety:?\*\*", first):
            head = re.sub(r"^- \*\*Thread-safety:?\*\*:?\s*", "", first)
            body = [head[:1].upper() + head[1:]] + [l[2:] for l in lines[1:]]
            ts.append(("para", body))
            continue
        desc.append((kind, lines))
    # "- **Errors:** none." as a list item alone reads better as a paragraph
    ret = [("para", [re.sub(r"^- ", "", lines[0])] + [l[2:] for l in lines[1:]]) if k == "item" else (k, lines)
           for k, lines in ret]
    return join_blocks(desc), join_blocks(ret), join_blocks(ts)


def drop_prototypes(md, funcs):
    """The text without a first block that only repeats the SYNOPSIS's prototypes."""
    bl = blocks(md)
    if not bl:
        return md
    kind, lines = bl[0]
    if kind == "code":
        rest = "\n".join(lines[1:-1])
    elif kind == "para":
        rest = " ".join(lines)
        rest = re.sub(r"`([^`]*)`", r"\1", rest) if re.fullmatch(r"(\s*`[^`]*`[,;]?)+\s*", rest) else "x"
    else:
        return md
    for f in funcs:
        rest = re.sub(rf"[A-Za-z_][\w\s\*]*\b{f}(_sized)?\s*\([^)]*\)\s*;?", "", rest)
    if rest.strip(" \n,;"):
        return md
    return join_blocks(bl[1:])


def summary(section):
    """NAME's description: what the section says first of its calls, if short.
    A paragraph that begins with one of its calls ("`vmo_version()` returns
    ...") first, else the first sentence of its prose; the heading itself
    for a section that documents a call only by declaring it."""
    if not any(f in heading_names(section.title) or (f + "_sized") in heading_names(section.title)
               for f in section.funcs):
        return plain(section.title)
    paras = []
    for kind, lines in blocks(section.text()):
        if kind in ("para", "item"):
            paras.append(re.sub(r"^- ", "", " ".join(l.strip() for l in lines)))
    calls = "|".join(map(re.escape, section.funcs))
    lead = [re.sub(rf"^`(?:{calls})\(\)`\s+", "", p) for p in paras if re.match(rf"^`(?:{calls})\(\)`\s+[a-z]", p)]
    for s in lead + paras:
        # drop a leading call form: "`int vmo_x(...)`: ..." or "`vmo_x(a, b)`, `...`: ..."
        s = re.sub(r"^(`[^`]*`[,\s]*)+:\s*", "", s)
        if s.startswith("`") or not s or s.startswith("Since"):
            continue
        s = plain(re.split(r"(?<=[.;])\s", s)[0]).rstrip(".;:")
        s = s[:1].upper() + s[1:]
        # a whole short sentence, or nothing (the caller says the chapter)
        if len(s) <= 90 and len(s.split()) >= 4 and s.count("(") == s.count(")"):
            return s
        break
    return None


# --------------------------------------------------------------------------
# Links: [text](#anchor) and [text](other.md) as readable text

def fix_links(md, page, anchors, attached):
    def repl(m):
        text, target = m.group(1), m.group(2)
        if target.startswith(("http://", "https://")):
            return m.group(0)
        if target.startswith("#"):
            s = anchors.get(target[1:])
            if s is None:
                die(f"page {page}: link to #{target[1:]}, a heading api.md does not have")
            if s in attached:
                return f"{text} (below)" if attached[s] == "below" else text
            if s.page and s.page != page:
                return f"{text} (see **{s.page}**({s.page_section}))"
            return f"{text} (docs/api.md)"
        f = target.split("#")[0]
        doc = "docs/" + f if "/" not in f else f
        t = plain(text)
        if t.endswith(f):
            return f"`{doc}`"
        return f"{text} (`{doc}`)"
    return re.sub(r"(?<!!)\[([^\]]+)\]\(([^)\s]+)\)", repl, md)


def demote(md, by):
    """#### subsection headings of a section's text -> ## (or ###)."""
    out, fence = [], False
    for ln in md.split("\n"):
        if ln.startswith("```"):
            fence = not fence
        m = None if fence else re.match(r"^(#{4,6})\s+(.*)", ln)
        if m:
            ln = "#" * max(2, len(m.group(1)) - by) + " " + m.group(2)
        out.append(ln)
    return "\n".join(out)


def links_of(md):
    return [t[1:] for t in re.findall(r"\]\((#[^)\s]+)\)", md)]


# --------------------------------------------------------------------------
# Rendering

LINE = 64   # ens a table may take: an 80-column terminal's, less man's indents


def table_widths(md):
    """Each pipe table's column widths, in ens, after their contents: the
    first columns (a code, a field's name) as wide as they need up to 24,
    the last one the rest of the line (tbl puts 3 ens between columns), at
    least 24."""
    specs, rows = [], []

    def flush():
        cells = [[c.strip() for c in r.strip().strip("|").split("|")] for r in rows]
        rows.clear()
        if len(cells) < 2:
            return
        n = len(cells[0])
        w = [max((len(plain(r[i])) for r in cells[:1] + cells[2:] if len(r) > i), default=3) for i in range(n)]
        word = [max((len(x) for r in cells[2:] if len(r) > i for x in plain(r[i]).split()), default=3)
                for i in range(n)]
        w = [max(min(max(x, 3), 24), word[i]) + 1 for i, x in enumerate(w[:-1])]
        w.append(max(LINE - sum(w) - 3 * (n - 1), 24, word[-1] + 1))
        # too wide: take from the widest column, down to its longest word
        while sum(w) + 3 * (n - 1) > LINE:
            i = max(range(n), key=lambda k: w[k] - word[k])
            if w[i] <= word[i] + 1:
                break
            w[i] -= 1
        specs.append(w)

    fence = False
    for ln in md.split("\n"):
        if ln.startswith("```"):
            fence = not fence
        if not fence and ln.startswith("|"):
            rows.append(ln)
            continue
        if rows:
            flush()
    if rows:
        flush()
    return specs


def pandoc_page(pandoc, md, name, section, version, manual):
    """markdown -> man (pandoc)."""
    r = subprocess.run([pandoc, "-f", "gfm", "-t", "man", "-s",
                        "-M", f"title={name}", "-M", f"section={section}",
                        "-M", f"footer=vmo {version}", "-M", f"header={manual}", "-M", "date="],
                       input=md, capture_output=True, text=True)
    if r.returncode != 0:
        die(f"pandoc failed on page {name}({section}): {r.stderr.strip()}")
    out = r.stdout
    # no hyphenation (of call names above all), ragged right: fewer "cannot
    # adjust" warnings from the narrow columns of tables
    out = out.replace("\n.hy\n", "\n.nh\n.ad l\n", 1)
    # tables: pandoc leaves their widths to tbl ("l l."), which gives each
    # text block the same share of the line; give them widths after their
    # contents instead, table by table (the same order as in the markdown)
    specs = iter(table_widths(md))

    def widths(m):
        cols = m.group(2).split()
        w = next(specs, None)
        if w is None or len(w) != len(cols):
            return m.group(0)
        return m.group(1) + " ".join(f"{c}w({x}n)" for c, x in zip(cols, w)) + ".\n"
    return re.sub(r"(\.TS\ntab\(@\);\n)([lrc ]+)\.\n", widths, out)


def synopsis_md(funcs, protos, macros):
    lines = ["#include <vmo.h>", ""]
    for f in funcs:
        if f in macros:
            lines.append(wrap_proto(macro_proto(protos[f + "_sized"], len(macros[f]))) +
                         "  /* macro */")
        elif f in protos:
            lines.append(wrap_proto(protos[f]))
    sized = [f + "_sized" for f in funcs if f in macros]
    if sized:
        lines.append("")
        lines += [wrap_proto(protos[f]) for f in sized]
    return ("```c\n" + "\n".join(lines) + "\n```\n\n"
            "Link with `-lvmo`, or build with `cc prog.c $(pkg-config --cflags --libs libvmo)`; "
            "CMake: `find_package(vmo)` and the target `vmo::vmo`.\n")


def md_escape(s):
    return re.sub(r"([\\`*_\[\]<>#|$])", r"\\\1", s)


def troff_escape(s):
    s = s.replace("\\", "\\e").replace("-", "\\-")
    return "\n".join(("\\&" + l if l.startswith((".", "'")) else l) for l in s.split("\n"))


def tool_page(tool, version):
    """vmo(1) in troff, from `vmo help` and `vmo help CMD`."""
    def run(*args):
        r = subprocess.run([tool, *args], capture_output=True, text=True)
        if r.returncode != 0:
            die(f"{tool} {' '.join(args)} exited {r.returncode}: {r.stderr.strip()}")
        return r.stdout.rstrip("\n").split("\n")

    top = run("help")
    if not top or not top[0].startswith("usage: vmo"):
        die(f"{tool} help: no 'usage: vmo' line (has the tool's help text changed?)")
    try:
        ci = top.index("Commands:")
    except ValueError:
        die(f"{tool} help: no 'Commands:' line (has the tool's help text changed?)")
    about = " ".join(l.strip() for l in top[1:ci] if l.strip())
    cmds = [m.group(1) for l in top[ci + 1:] for m in [re.match(r"^  vmo (\S+)", l)] if m]
    if not cmds:
        die(f"{tool} help: no command listed")
    # what follows the last command's text: lines at column 0
    tail, seen_blank = [], False
    last = max(i for i, l in enumerate(top) if re.match(r"^  vmo ", l))
    for l in top[last + 1:]:
        if not l.strip():
            seen_blank = True
            continue
        if seen_blank and not l.startswith(" "):
            tail.append(l)
    out = [f'.TH "vmo" "1" "" "vmo {version}" "vmo manual"', ".nh",
           ".SH NAME", "vmo \\- the command\\-line tool of libvmo: " +
           troff_escape(re.sub(r"\s*\(libvmo [^)]*\)", "", about).rstrip(".").lower()),
           ".SH SYNOPSIS", ".B vmo", ".I COMMAND", "[\\fIOPTIONS\\fR]", ".br",
           ".B vmo help", "[\\fICOMMAND\\fR]", ".br", ".B vmo \\-\\-version",
           ".SH DESCRIPTION", troff_escape(about),
           "Each command's usage is also printed by",
           ".B vmo help", ".I COMMAND", "and", ".BI \"vmo \" COMMAND \" \\-\\-help\"\\fR.",
           "This page is made from those texts.",
           ".SH COMMANDS"]
    for c in cmds:
        text = run("help", c)
        if not text[0].startswith(f"usage: vmo {c}"):
            die(f"{tool} help {c}: no 'usage: vmo {c}' line")
        syn, i = [text[0][len("usage: "):].strip()], 1
        while i < len(text) and re.match(r"^ {5,}\S", text[i]):
            syn.append(text[i].strip())
            i += 1
        out += [".TP", ".B " + troff_escape(" ".join(syn))]
        opts = False
        for l in text[i:]:
            l = l[4:] if l.startswith("    ") else l.strip()
            m = re.match(r"^(--?[A-Za-z][\w-]*(?: [A-Z]+)?): (.*)", l)
            if m:    # "--budget N: ..." an option's own paragraph, indented
                if not opts:
                    out.append(".RS")
                    opts = True
                out += [".TP", ".B " + troff_escape(m.group(1)), troff_escape(m.group(2))]
                continue
            out.append(troff_escape(l))
        if opts:
            out.append(".RE")
    notes = [l for l in tail if not l.startswith("Exit status")]
    status = [l for l in tail if l.startswith("Exit status")]
    if notes:
        out += [".SH NOTES"] + [troff_escape(l) for l in notes]
    if status:
        out += [".SH EXIT STATUS", troff_escape(status[0].split(":", 1)[1].strip())]
    out += [".SH SEE ALSO", ".BR vmo (3)", "for the library, and its calls' pages, such as",
            ".BR vmo_map (3)."]
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--api")
    ap.add_argument("--header")
    ap.add_argument("--version")
    ap.add_argument("--tool", help="the built vmo tool, for vmo(1)")
    ap.add_argument("--pandoc", default="pandoc")
    ap.add_argument("--out")
    ap.add_argument("--check", action="store_true", help="only check that every call has a section")
    ap.add_argument("--man1-only", action="store_true", help="only vmo(1), from --tool")
    a = ap.parse_args()
    if not a.check and not (a.version and a.out):
        ap.error("--version and --out are needed (or --check)")
    if a.man1_only:
        if not a.tool:
            ap.error("--man1-only needs --tool")
        os.makedirs(os.path.join(a.out, "man1"), exist_ok=True)
        with open(os.path.join(a.out, "man1", "vmo.1"), "w", encoding="utf-8") as f:
            f.write(tool_page(a.tool, a.version))
        return
    if not (a.api and a.header):
        ap.error("--api and --header are needed")

    protos, order, macros = read_header(a.header)
    intro, chapters, allsec, anchors = parse_api(a.api)

    # Which section documents each call: a heading naming it first, else a
    # ```c block declaring it.
    doc_of = {}
    for f in order:
        base = f[:-len("_sized")] if f.endswith("_sized") and f[:-len("_sized")] in macros else None
        for s in allsec:
            if s.level == 3 and (f in heading_names(s.title) or (base and base in heading_names(s.title))):
                doc_of[f] = s
                break
        else:
            for s in allsec:
                if s.level == 3 and declares(s, f):
                    doc_of[f] = s
                    break
    missing = [f for f in order if f not in doc_of]
    if missing:
        for f in missing:
            print(f"{PROG}: {f}: declared VMO_API in {a.header} but documented in no section of {a.api}: "
                  f"add a '### `{f}`' section (the man page {f}(3) is made from it)", file=sys.stderr)
        sys.exit(1)
    if a.check:
        print(f"{PROG}: ok: all {len(order)} calls have a section in {a.api}")
        return

    # Each documenting section's calls, in its heading's order (the names
    # programs use: a macro NAME before NAME_sized), then the rest.
    for s in allsec:
        mine = [f for f in order if doc_of[f] is s]
        if not mine:
            continue
        names = []
        for n in heading_names(s.title):
            if (n in protos and doc_of.get(n) is s) or (n in macros and doc_of.get(n + "_sized") is s):
                if n not in names:
                    names.append(n)
        for f in mine:
            base = f[:-len("_sized")]
            if f.endswith("_sized") and base in macros and base not in names:
                names.append(base)
            if f not in names and not (f.endswith("_sized") and base in names):
                names.append(f)
        s.funcs = names
        s.page, s.page_section = names[0], 3
    # vmo(3): the Conventions chapter; X(3) for a chapter with no call but a `struct X` section
    conv = next((c for c in chapters if c.title == "Conventions"), None)
    if conv is None:
        die(f"{a.api}: no '## Conventions' chapter (for vmo(3))")
    conv.page, conv.page_section = "vmo", 3
    struct_pages = []
    for c in chapters:
        if c is conv or any(s.funcs for s in c.sections):
            continue
        st = next((s for s in c.sections if re.fullmatch(r"`struct (\w+)`", s.title)), None)
        if st:
            name = re.fullmatch(r"`struct (\w+)`", st.title).group(1)
            c.page, c.page_section = name, 3
            for s in c.sections:
                s.page, s.page_section = name, 3
            struct_pages.append(c)
    for s in conv.sections:
        s.page, s.page_section = "vmo", 3

    os.makedirs(os.path.join(a.out, "man3"), exist_ok=True)
    # no page of a call that is gone stays behind
    for d in ("man3", "man1") if a.tool else ("man3",):
        p = os.path.join(a.out, d)
        if os.path.isdir(p):
            for f in os.listdir(p):
                if f.endswith((".3", ".1")):
                    os.unlink(os.path.join(p, f))

    version = a.version
    jobs = []   # (path, markdown, name, section, manual)

    def see_also(pages):
        return ", ".join(f"**{p}**({n})" for p, n in pages)

    def attach_md(s, page, level_title="##"):
        return f"{level_title} {plain(s.title)}\n\n" + demote(s.text(), 1 if level_title == "##" else 0)

    for c in chapters:
        fsecs = [s for s in c.sections if s.funcs]
        for s in fsecs:
            page = s.page
            own = s.text()
            desc, ret, ts = split_returns(own)
            desc = drop_prototypes(desc, s.funcs)
            # the chapter's "Thread-safety of ..." sections: every call's
            for t in c.sections:
                if not t.funcs and t.title.lower().startswith("thread-safety"):
                    ts = (ts + "\n\n" if ts.strip() else "") + demote(t.text(), 2)
            # what goes with it: the chapter's sections it links to, and its
            # chapter's `struct X` sections its prototypes take
            attached = {}
            protos_txt = " ".join(protos.get(f, "") + protos.get(f + "_sized", "") for f in s.funcs)
            for t in c.sections:
                if t is s or t.funcs:
                    continue
                m = re.fullmatch(r"`struct (\w+)`", t.title)
                if t.anchor in links_of(own) or (m and re.search(rf"struct {m.group(1)}\b", protos_txt)):
                    attached[t] = "below"
            attached[s] = "self"
            allnames = s.funcs + [f + "_sized" for f in s.funcs if f in macros]
            md = [f"# NAME\n\n{', '.join(allnames)} - " +
                  md_escape(summary(s) or f"libvmo: {plain(c.title)}") + "\n",
                  "# SYNOPSIS\n\n" + synopsis_md(s.funcs, protos, macros)]
            body = []
            chap_intro = c.text()
            if chap_intro.strip():
                body.append(f"## {plain(c.title)}\n\n" + demote(chap_intro, 1))
                body.append(f"## {plain(s.title)}\n\n" + demote(desc, 1))
            else:
                body.append(demote(desc, 2))
            for t in attached:
                if t is not s:
                    body.append(attach_md(t, page))
            md.append("# DESCRIPTION\n\n" + "\n\n".join(body))
            if ret.strip():
                md.append("# RETURN VALUE\n\n" + ret)
            if ts.strip():
                md.append("# THREAD SAFETY\n\n" + ts)
            others = [(t.page, 3) for t in fsecs if t is not s]
            md.append("# SEE ALSO\n\n" + see_also([("vmo", 3)] + others) +
                      f"; the chapter \"{md_escape(plain(c.title))}\" of `docs/api.md`, which this page is made from.")
            jobs.append((os.path.join(a.out, "man3", page + ".3"),
                         fix_links("\n\n".join(md), page, anchors, attached), page, 3, "libvmo manual"))

    # X(3) for the struct chapters (the pager contract)
    for c in struct_pages:
        attached = {t: "self" for t in c.sections}
        parts = [c.text()] + [f"## {plain(t.title)}\n\n" + demote(t.text(), 1) for t in c.sections]
        md = (f"# NAME\n\n{c.page} - {md_escape(plain(c.title).lower())} of libvmo\n\n"
              f"# SYNOPSIS\n\n```c\n#include <vmo.h>\n\nstruct {c.page};\n```\n\n"
              "# DESCRIPTION\n\n" + "\n\n".join(p for p in parts if p.strip()) +
              "\n\n# SEE ALSO\n\n**vmo**(3), **vmo_object_create**(3); the chapter \"" +
              md_escape(plain(c.title)) + "\" of `docs/api.md`, which this page is made from.")
        jobs.append((os.path.join(a.out, "man3", c.page + ".3"),
                     fix_links(md, c.page, anchors, attached), c.page, 3, "libvmo manual"))

    # vmo(3): the conventions, what they link to, and every call
    attached = {conv: "self"}
    for t in conv.sections:
        attached[t] = "self"
    for t in links_of(conv.text()):
        s = anchors[t]
        if s.level == 3 and not s.funcs and s.page is None:
            attached[s] = "below"
            s.page, s.page_section = "vmo", 3
    calls = []
    for c in chapters:
        secs = [s for s in c.sections if s.funcs]
        if not secs:
            continue
        calls.append(f"## {plain(c.title)}\n")
        for s in secs:
            desc = summary(s)
            calls.append("- " + ", ".join(f"**{f}**(3)" for f in s.funcs) + (f": {md_escape(desc)}." if desc else ""))
        calls.append("")
    extra = "".join(f"\n\nThe pages of the chapters that document no call but a structure: "
                    + ", ".join(f"**{c.page}**(3) ({md_escape(plain(c.title).lower())})" for c in struct_pages)
                    + "." if struct_pages else "")
    md = ("# NAME\n\nvmo - memory objects paged by user-level pagers (libvmo)\n\n"
          "# SYNOPSIS\n\n" + synopsis_md([], protos, macros) +
          "\n# DESCRIPTION\n\nlibvmo gives a program memory objects whose pages a pager of its own supplies "
          "and stores on demand (Linux userfaultfd), mapped into one or more processes. Each public call "
          "has a page of its own, listed below under CALLS; they are made from `docs/api.md`, the "
          f"library's reference, of version {version}.\n\n"
          "## Conventions\n\n" + demote(conv.text(), 1) + "\n\n" +
          "\n\n".join(attach_md(t, "vmo") for t in attached if t is not conv and t.chapter is not conv) +
          "\n\n# CALLS\n\n" + "\n".join(calls) + extra +
          "\n\n# SEE ALSO\n\n**vmo**(1), the command-line tool; `docs/api.md` (the whole reference: also "
          "budgets and memory pressure, signals, fork() and thread-safety), `docs/design.md` and "
          "`README.md` in the vmo sources.")
    jobs.append((os.path.join(a.out, "man3", "vmo.3"), fix_links(md, "vmo", anchors, attached), "vmo", 3,
                 "libvmo manual"))

    def render(job):
        path, md, name, sec, manual = job
        with open(path, "w", encoding="utf-8") as f:
            f.write(pandoc_page(a.pandoc, md, name, sec, version, manual))
        return path

    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as ex:
        list(ex.map(render, jobs))

    # the other calls of each page: .so links
    links = 0
    for s in allsec:
        for f in s.funcs[1:] + [f + "_sized" for f in s.funcs if f in macros]:
            with open(os.path.join(a.out, "man3", f + ".3"), "w", encoding="utf-8") as out:
                out.write(f".so man3/{s.page}.3\n")
            links += 1
    n1 = 0
    if a.tool:
        os.makedirs(os.path.join(a.out, "man1"), exist_ok=True)
        with open(os.path.join(a.out, "man1", "vmo.1"), "w", encoding="utf-8") as f:
            f.write(tool_page(a.tool, version))
        n1 = 1
    print(f"{PROG}: {len(jobs)} pages and {links} links in {a.out}/man3 for {len(order)} calls"
          + (", vmo(1) in man1" if n1 else ""))


if __name__ == "__main__":
    main()
