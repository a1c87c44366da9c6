"""The persistent REPL that runs INSIDE a sandbox. Standard library only, no package imports:
the file is copied or bound into the sandbox alone (the host reuses `truncate` from it).

    python3 driver.py CMD_FD RESULT_FD

The host speaks JSON lines on two dedicated pipes whose numbers are given on the command line.
Both are made non-inheritable at once, so no process started by the agent's code holds them, and
the driver makes itself non-dumpable, so such a process (same user) cannot open them again
through /proc/<driver pid>/fd either.
The driver's stdout/stderr are only ever the agent's output, never the protocol.

host -> driver: {"type": "init", "task", "root", "context", "output_limit", "limits", "packages"}
driver -> host: {"type": "ready", "pid", "python", "facts"}
host -> driver: {"type": "exec", "id", "code", "timeout", "label"}
driver -> host: {"type": "call", "id", "fn", "args"}  host -> driver: {"type": "reply", "id", "ok", ...}
driver -> host: {"type": "result", "id", "stdout", "stderr", "error", "final", "duration", "findings"}
host -> driver: {"type": "shutdown"}
"""

import ast
import io
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback

TRUNCATION_MARKER = "\n... [output truncated: {shown} of {total} characters shown] ...\n"
MAX_FINDINGS_PER_BLOCK = 100  # bot/rlm/findings.py checks the same bound on the host


class _Final(BaseException):
    """Raised by FINAL to stop the block; BaseException so `except Exception` does not swallow it."""


class _ExecTimeout(BaseException):
    pass


def truncate(text, limit):
    if len(text) <= limit:
        return text
    head = limit // 2
    tail = limit - head
    marker = TRUNCATION_MARKER.format(shown=limit, total=len(text))
    return text[:head] + marker + text[len(text) - tail :]


def _not_dumpable():
    """PR_SET_DUMPABLE 0: /proc/<pid>/fd and ptrace are closed to other processes of our user."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(4, 0, 0, 0, 0) != 0:  # PR_SET_DUMPABLE
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_DUMPABLE) failed")
    except (OSError, AttributeError) as e:
        sys.stderr.write(f"driver: could not make the channel private: {e}\n")


class Channel:
    def __init__(self, cmd_fd, res_fd):
        os.set_inheritable(cmd_fd, False)
        os.set_inheritable(res_fd, False)
        # Importing ctypes takes a while: done while the host waits for its first model reply,
        # and always finished before a message after `init` (so before any agent code) is read.
        self._private = threading.Thread(target=_not_dumpable, name="rlm-private")
        self._private.start()
        self._in = os.fdopen(cmd_fd, "rb")
        self._out = os.fdopen(res_fd, "wb", buffering=0)
        self._lock = threading.Lock()
        self._received = 0

    def send(self, msg):
        data = (json.dumps(msg, ensure_ascii=False) + "\n").encode("utf-8", "surrogatepass")
        with self._lock:
            self._out.write(data)

    def recv(self):
        line = self._in.readline()
        if not line:
            raise SystemExit(0)  # host went away
        self._received += 1
        if self._received > 1:
            self._private.join()
        return json.loads(line)


def _descendants(root_pid):
    """PIDs of every live descendant of root_pid, from /proc."""
    children = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read().decode("ascii", "replace")
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(name))
    found, stack = [], [root_pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def kill_descendants():
    for pid in _descendants(os.getpid()):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


# ---------------------------------------------------------------- helpers given to the agent


def _read_text(path):
    raw = open(path, "rb").read()
    for bom, enc in ((b"\xef\xbb\xbf", "utf-8-sig"), (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16")):
        if raw.startswith(bom):
            return raw.decode(enc), enc
    try:
        return raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return raw.decode("latin-1"), "latin-1"


def _parse_error(path, text):
    """Why `text` is not a valid file of its kind, or None (also None when no parser exists)."""
    lower = path.lower()
    try:
        if lower.endswith((".py", ".pyi")):
            compile(text, path, "exec", dont_inherit=True)
        elif lower.endswith(".json"):
            json.loads(text)
        elif lower.endswith(".toml"):
            try:
                import tomllib
            except ImportError:
                return None
            tomllib.loads(text)
        elif lower.endswith((".yaml", ".yml")):
            try:
                import yaml
            except ImportError:
                return None
            yaml.safe_load(text)
    except Exception as e:  # each parser raises its own error type
        return f"{type(e).__name__}: {e}"
    return None


def edit_file(path, old, new, replace_all=False):
    """Replace the exact text `old` by `new` in `path`. Keeps encoding and line endings; refuses a
    result that no longer parses (Python, JSON, TOML, YAML where a parser exists)."""
    if not isinstance(old, str) or not isinstance(new, str):
        raise TypeError("edit_file(path, old, new): old and new must be strings")
    if not old:
        raise ValueError("edit_file: `old` is empty; to create a file, use open(path, 'w').write(text)")
    text, encoding = _read_text(path)
    crlf = "\r\n" in text
    body = text.replace("\r\n", "\n") if crlf else text
    old_n, new_n = old.replace("\r\n", "\n"), new.replace("\r\n", "\n")
    count = body.count(old_n)
    if count == 0:
        raise ValueError(
            f"edit_file: the text to replace was not found in {path}; copy it exactly from the file."
            + _closest_lines(body, old_n)
        )
    if count > 1 and not replace_all:
        raise ValueError(
            f"edit_file: the text occurs {count} times in {path}; include more surrounding lines "
            "to make it unique, or pass replace_all=True"
        )
    result = body.replace(old_n, new_n) if replace_all else body.replace(old_n, new_n, 1)
    before = _parse_error(path, body)
    after = _parse_error(path, result)
    if after and not before:
        raise ValueError(f"edit_file: refused, the edit would break {path}: {after}")
    if crlf:
        result = result.replace("\n", "\r\n")
    with open(path, "wb") as f:
        f.write(result.encode(encoding))
    return f"edited {path}: {count if replace_all else 1} replacement(s)"


def _closest_lines(body, old, shown=3):
    """Where the file holds text most like `old`: a few numbered excerpts, for the error message."""
    import difflib

    want = [ln for ln in old.split("\n") if ln.strip()]
    lines = body.split("\n")
    if not want or not lines:
        return ""
    first = want[0].strip()
    scored = []
    for i, line in enumerate(lines):
        if line.strip():
            matcher = difflib.SequenceMatcher(None, first, line.strip(), autojunk=False)
            if matcher.real_quick_ratio() >= 0.5 and matcher.quick_ratio() >= 0.5:
                scored.append((matcher.ratio(), i))
    scored = sorted((s for s in scored if s[0] >= 0.5), reverse=True)[:shown]
    if not scored:
        return " No line of the file resembles its first line: " + repr(first[:120]) + "."
    width = max(1, len(old.split("\n")))
    parts = []
    hidden = False
    for _, i in sorted(scored, key=lambda s: s[1]):
        rows = []
        for n in range(i, min(len(lines), i + width)):
            shown = lines[n]
            if _invisible(shown):  # e.g. a non-breaking space: printed, it looks like a space
                shown, hidden = "repr: " + repr(shown), True
            rows.append(f"{n + 1:>6}| {shown}")
        parts.append("\n".join(rows))
    hint = ""
    if any(ln.strip() == first for ln in lines) or _same_but_indent(body, old):
        hint = " (the text exists with different indentation or surrounding lines)"
    if hidden:
        hint += INVISIBLE_HINT
    return " The closest lines" + hint + ":\n" + "\n  ...\n".join(parts)


INVISIBLE_HINT = (
    " (lines marked `repr:` hold characters that print like spaces or not at all, shown as Python "
    "escapes such as \\xa0: put the same escapes in `old`)"
)


def _invisible(line):
    """Whether `line` holds a character that prints as a space or as nothing (NBSP, zero-width
    space, BOM, a control character other than tab)."""
    import unicodedata

    return any(
        (ch != "\t" and not ch.isprintable()) or (ch != " " and unicodedata.category(ch) in ("Zs", "Cf"))
        for ch in line
    )


def _same_but_indent(body, old):
    squeeze = lambda t: "\n".join(ln.strip() for ln in t.split("\n"))  # noqa: E731
    return squeeze(old).strip() in squeeze(body)


def _unfence(diff):
    """The diff inside ``` fences (```diff ... ```), or the text as given when it has none."""
    lines = diff.split("\n")
    opened = [i for i, ln in enumerate(lines) if ln.lstrip().startswith("```")]
    if len(opened) >= 2:
        body = lines[opened[0] + 1 : opened[1]]
        if any(ln.startswith(("diff --git", "--- ", "@@")) for ln in body):
            return "\n".join(body)
    return diff


def _git_apply(diff, *args, recount=True):
    """`git apply`; with `recount` the hunk headers' line counts are recomputed (hand-written
    diffs often get them wrong), but then a blank line after the last hunk counts as context."""
    return subprocess.run(
        ["git", "apply", "--whitespace=nowarn", *(["--recount"] if recount else []), *args, "-"],
        input=diff.encode("utf-8", "surrogateescape"),
        capture_output=True,
    )


def _file_sections(diff):
    """[(path, header_lines, [hunk_lines, ...])] of a unified diff (git's or plain `diff -u`)."""
    lines = diff.split("\n")
    git_style = any(ln.startswith("diff --git ") for ln in lines)
    sections = []
    for i, line in enumerate(lines):
        if (
            line.startswith("diff --git ")
            if git_style
            else (line.startswith("--- ") and i + 1 < len(lines) and lines[i + 1].startswith("+++ "))
        ):
            sections.append((line, [], []))
        if not sections:
            continue
        _, header, hunks = sections[-1]
        if line.startswith("@@"):
            hunks.append([line])
        elif hunks:
            hunks[-1].append(line)
        else:
            header.append(line)
    return [(_section_path(first, header), header, hunks) for first, header, hunks in sections]


def _section_path(first, header):
    for prefix, strip in (("+++ ", "b/"), ("--- ", "a/")):
        for line in header:
            name = line[4:].split("\t")[0].strip() if line.startswith(prefix) else ""
            if name and name != "/dev/null":
                return name[2:] if name.startswith(strip) else name
    return first.rsplit(" b/", 1)[-1] if first.startswith("diff --git ") else "?"


def _failures(diff):
    """One line per file and hunk of `diff` that does not apply here."""
    failed = []
    for path, header, hunks in _file_sections(diff):
        whole = "\n".join(header + [ln for h in hunks for ln in h]) + "\n"
        if _git_apply(whole, "--check").returncode == 0:
            continue
        bad = []
        for hunk in hunks:
            while hunk and hunk[-1] == "":
                hunk = hunk[:-1]
            single = "\n".join(header + hunk) + "\n"
            if _git_apply(single, "--check").returncode != 0:
                expected = [ln[1:] for ln in hunk[1:] if ln[:1] in (" ", "-")][:3]
                bad.append(f"  hunk {hunk[0]} (expects: {' | '.join(e.strip() for e in expected)[:160]})")
        if not hunks:
            bad.append(
                "  "
                + (
                    _git_apply(whole, "--check").stderr.decode("utf-8", "replace").strip().splitlines()
                    or ["it does not apply"]
                )[-1]
            )
        failed.append(
            f"- {path}:\n" + "\n".join(bad or ["  the file's hunks apply one by one but not together"])
        )
    return failed


def apply_patch(diff):
    """Apply a unified diff (e.g. a sub-agent's `answer.patch`) to this checkout, all or nothing.
    ``` fences around the diff are ignored. Returns a summary; raises naming each failing hunk."""
    if isinstance(diff, AgentAnswer):
        if not diff.patch.strip():
            raise ValueError("apply_patch: that sub-agent changed no files (its .patch is empty)")
        diff = diff.patch
    if not isinstance(diff, str) or not diff.strip():
        raise ValueError("apply_patch: the diff is empty")
    diff = _unfence(diff)
    if not diff.endswith("\n"):
        diff += "\n"
    # As written first (git's own diffs, a trailing blank line included), then with recounted hunks.
    recount = False
    check = _git_apply(diff, "--check", recount=False)
    if check.returncode != 0:
        recount = True
        check = _git_apply(diff, "--check")
    if check.returncode == 0 and _git_apply(diff, recount=recount).returncode == 0:
        stat = _git_apply(diff, "--numstat", recount=recount)
        files = [line.split("\t")[-1] for line in stat.stdout.decode("utf-8", "replace").splitlines() if line]
        return f"applied patch to {len(files)} file(s): {', '.join(files)}"
    reason = check.stderr.decode("utf-8", "replace").strip().splitlines()
    failures = _failures(diff)
    detail = "\n".join(failures) if failures else "\n".join(reason[-3:]) or "git apply gave no reason"
    raise ValueError(
        "apply_patch: the diff does not apply, so NO file was changed. Failing parts:\n"
        + detail
        + "\nRead the files as they are now and redo those changes with edit_file."
    )


class AgentAnswer(str):
    """A sub-agent's answer (the str), with what it changed: `.patch` is the diff of its checkout
    (new files included; '' when it changed nothing), taken by the host when it finished.
    `.truncated` says the answer was cut to the length limit."""

    patch = ""
    truncated = False
    agent_id = ""


def _answer(value):
    if isinstance(value, str):  # a refusal ("Error: ..."): no sub-agent ran, so no changes
        return AgentAnswer(value)
    if not isinstance(value, dict):
        return value
    answer = AgentAnswer(value.get("answer") or "")
    answer.patch = value.get("patch") or ""
    answer.truncated = bool(value.get("truncated"))
    answer.agent_id = value.get("agent") or ""
    return answer


TOOLS = (
    "git",
    "rg",
    "grep",
    "find",
    "sed",
    "awk",
    "diff",
    "patch",
    "make",
    "gcc",
    "node",
    "npm",
    "uv",
    "pip",
    "pytest",
    "ruff",
    "tox",
)
MODULES = ("pytest", "yaml", "numpy")


def sandbox_facts(packages=()):
    """What the agent's code can use here, measured here: reported to the host once, for the
    prompt. `packages`: the project's (import name, directory) pairs; each is looked up with
    `find_spec` as the REPL would import it."""
    import shutil

    here = os.getcwd()
    python3 = shutil.which("python3")
    return {
        "python": sys.version.split()[0],
        "executable": sys.executable,  # as the agent's code sees it: a venv's path, not its target
        "checkout": here,
        "tools": [t for t in TOOLS if shutil.which(t)],
        "path_python": python3 if python3 and not _same_python(python3) else None,
        "modules": [m for m in MODULES if _find(m) is not None],
        "packages": [_package_fact(name, where, here) for name, where in packages],
    }


def _same_python(path):
    """`path` runs this interpreter with this environment (the same venv, or no venv at all)."""
    if os.path.dirname(os.path.abspath(path)) == os.path.dirname(sys.executable):
        return True
    same = os.path.realpath(path) == os.path.realpath(sys.executable)
    return same and sys.prefix == sys.base_prefix


def _find(name):
    import importlib.util

    try:
        return importlib.util.find_spec(name)
    except (ImportError, ValueError):  # a broken package, a module with a None __spec__
        return None


def _package_fact(name, where, here):
    """How `name` (whose source is `where` in the checkout) imports in this REPL: from the
    checkout, from elsewhere (an installed copy), or not at all."""
    spec = _find(name)
    fact = {"name": name, "dir": where, "imports_from": None, "path": None}
    if spec is None:
        return fact
    locations = list(spec.submodule_search_locations or [])
    found = locations[0] if locations else (os.path.dirname(spec.origin) if spec.origin else None)
    if not found:
        return fact
    fact["path"] = found
    inside = os.path.realpath(found) == os.path.realpath(os.path.join(here, where))
    fact["imports_from"] = "checkout" if inside else "elsewhere"
    return fact


# ---------------------------------------------------------------- the REPL


class Repl:
    def __init__(self, channel):
        self.ch = channel
        self.task = ""
        self.context = ""
        self.root = False
        self.output_limit = 20000
        self.final = None
        self._call_id = 0
        self._call_lock = threading.Lock()
        self.findings = []  # COMMENT's findings of the running block, sent with its result
        self.checkout = os.getcwd()  # the repository root: COMMENT's paths are relative to it
        self.ns = {"__name__": "__main__", "__builtins__": __builtins__}

    # calls to the host: the block's own clock stops while the host works (children, LLM)
    def _call(self, fn, args):
        with self._call_lock:
            self._call_id += 1
            call_id = self._call_id
            remaining = signal.setitimer(signal.ITIMER_REAL, 0)[0]
            try:
                self.ch.send({"type": "call", "id": call_id, "fn": fn, "args": args})
                while True:
                    msg = self.ch.recv()
                    if msg.get("type") == "reply" and msg.get("id") == call_id:
                        break
            finally:
                if remaining > 0:
                    signal.setitimer(signal.ITIMER_REAL, remaining)
        if not msg.get("ok"):
            return "Error: " + str(msg.get("error"))
        return msg.get("value")

    def rlm_query(self, task):
        """Run one sub-agent in its own sandbox at the same commit; returns its answer (a str whose
        `.patch` holds the sub-agent's file changes)."""
        return _answer(self._call("rlm_query", {"task": str(task)}))

    def rlm_query_batched(self, tasks):
        """Run sub-agents in parallel; answers in task order (a failed one is its error text)."""
        tasks = [str(t) for t in tasks]
        if not tasks:
            return []
        value = self._call("rlm_query_batched", {"tasks": tasks})
        return [_answer(v) for v in value] if isinstance(value, list) else value

    def REPORT(self, markdown):
        """Hand back a report beside the patch (root only); a later call replaces it."""
        reply = self._call("report", {"markdown": str(markdown)})
        print(reply)

    def llm_query(self, prompt):
        """A plain model call with no sandbox and no tools; returns the text."""
        return self._call("llm_query", {"prompt": str(prompt)})

    def COMMENT(self, path, line, body, suggestion=None):
        """Record a review finding on `line` (1-based) of `path` (relative to the repository root);
        `suggestion` is the exact text that should replace that line."""
        if not isinstance(path, str) or not path.strip():
            raise TypeError("COMMENT(path, line, body): path must be a file's path, e.g. 'src/app.py'")
        path = path.strip()
        if path.startswith("./"):
            path = path[2:]
        if os.path.isabs(path) or ".." in path.split("/"):
            raise ValueError(f"COMMENT: {path!r} is not inside the repository; give the path from its root")
        if isinstance(line, bool) or not isinstance(line, int) or line < 1:
            raise TypeError("COMMENT: line must be a line number (an int, counting from 1)")
        if not isinstance(body, str) or not body.strip():
            raise ValueError("COMMENT: body must say what is wrong (a non-empty str)")
        if suggestion is not None and not isinstance(suggestion, str):
            raise TypeError("COMMENT: suggestion must be the replacement text (a str) or None")
        where = os.path.join(self.checkout, path)
        if not os.path.isfile(where):
            raise ValueError(f"COMMENT: there is no file {path!r} in the checkout")
        with open(where, "rb") as f:
            data = f.read()
        count = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
        if line > count:
            raise ValueError(f"COMMENT: {path} has only {count} lines")
        if len(self.findings) >= MAX_FINDINGS_PER_BLOCK:
            raise ValueError(f"COMMENT: at most {MAX_FINDINGS_PER_BLOCK} findings per code block")
        self.findings.append({"path": path, "line": line, "body": body, "suggestion": suggestion})
        print(f"finding recorded on {path}:{line}")

    def FINAL(self, answer):
        self.final = answer if isinstance(answer, str) else str(answer)
        raise _Final()

    def FINAL_VAR(self, name):
        if not isinstance(name, str):
            raise TypeError("FINAL_VAR takes the variable's NAME as a string, e.g. FINAL_VAR('answer')")
        if name not in self.ns:
            raise NameError(
                f"FINAL_VAR: no variable named {name!r} in the REPL; assign it first or call FINAL(text)"
            )
        return self.FINAL(self.ns[name])

    def install(self):
        for name in ("rlm_query", "rlm_query_batched", "llm_query", "COMMENT", "FINAL", "FINAL_VAR"):
            self.ns[name] = getattr(self, name)
        self.ns["edit_file"] = edit_file
        self.ns["apply_patch"] = apply_patch
        self.ns["task"] = self.task
        if self.root:  # the root's request context, and its report channel
            self.ns["context"] = self.context
            self.ns["REPORT"] = self.REPORT

    def _run(self, code, label):
        tree = ast.parse(code, filename=label)
        last = None
        if tree.body and isinstance(tree.body[-1], ast.Expr):
            last = ast.Expression(tree.body.pop().value)
        exec(compile(tree, label, "exec"), self.ns)
        if last is not None:
            value = eval(compile(last, label, "eval"), self.ns)
            if value is not None:
                print(repr(value))

    def execute(self, msg):
        code, timeout = msg.get("code", ""), float(msg.get("timeout") or 300)
        label = f"<block {msg.get('label') or msg.get('id')}>"  # the number the model sees in results
        self.final = None
        self.findings = []
        error = None
        out_fd, out_path = tempfile.mkstemp(prefix="rlm-out-")
        err_fd, err_path = tempfile.mkstemp(prefix="rlm-err-")
        sys.stdout.flush()
        sys.stderr.flush()
        saved = os.dup(1), os.dup(2)
        os.dup2(out_fd, 1)
        os.dup2(err_fd, 2)
        start = time.monotonic()

        def on_alarm(signum, frame):
            raise _ExecTimeout()

        signal.signal(signal.SIGALRM, on_alarm)
        signal.setitimer(signal.ITIMER_REAL, timeout)
        timed_out = False
        try:
            self._run(code, label)
        except _Final:
            pass
        except _ExecTimeout:
            timed_out = True
        except SyntaxError as e:
            error = f"SyntaxError: {e.msg} (line {e.lineno})\n{(e.text or '').rstrip()}"
        except SystemExit as e:
            error = f"SystemExit({e.code}): exit() ends nothing here; call FINAL(answer) to finish"
        except BaseException as e:
            error = _format_exc(e, label)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        if timed_out:
            kill_descendants()
            error = f"TimeoutError: the block ran longer than {timeout:.0f}s and was stopped; its subprocesses were killed"
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except Exception:  # a closed or broken stream set by the agent's code
            pass
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, out_fd, err_fd):
            os.close(fd)
        stdout, stderr = _slurp(out_path), _slurp(err_path)
        final = None if self.final is None else {"answer": self.final}
        self.ch.send(
            {
                "type": "result",
                "id": msg.get("id"),
                "stdout": truncate(stdout, self.output_limit),
                "stderr": truncate(stderr, self.output_limit),
                "error": truncate(error, self.output_limit) if error else None,
                "final": final,
                "duration": round(time.monotonic() - start, 4),
                "findings": self.findings,
            }
        )
        self.findings = []

    def serve(self):
        while True:
            msg = self.ch.recv()
            kind = msg.get("type")
            if kind == "init":
                self.task = msg.get("task", "")
                self.root = bool(msg.get("root"))
                self.context = str(msg.get("context") or "")
                self.output_limit = int(msg.get("output_limit", self.output_limit))
                _apply_limits(msg.get("limits") or {})
                self.install()
                # As `python` run in the checkout would: the checkout's root is importable.
                if os.getcwd() not in sys.path:
                    sys.path.insert(0, os.getcwd())
                self.ch.send(
                    {
                        "type": "ready",
                        "pid": os.getpid(),
                        "python": sys.version.split()[0],
                        "facts": sandbox_facts(msg.get("packages") or ()),
                    }
                )
                # Like `python` started in the checkout: its own modules import (`import calc`).
                # After the driver's own imports, so a file of the repository cannot replace them.
                import difflib  # noqa: F401  (edit_file's error hints use it later)

                sys.path.insert(0, self.checkout)
            elif kind == "exec":
                self.execute(msg)
            elif kind == "shutdown":
                return


def _slurp(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    finally:
        os.unlink(path)


def _format_exc(exc, label):
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename != __file__]
    lines = ["Traceback (most recent call last):\n"] if frames else []
    lines += traceback.format_list(frames)
    lines += traceback.format_exception_only(type(exc), exc)
    return "".join(lines).rstrip()


def _apply_limits(limits):
    try:
        import resource
    except ImportError:
        return
    mapping = {
        "memory_bytes": resource.RLIMIT_AS,
        "file_bytes": resource.RLIMIT_FSIZE,
        "processes": resource.RLIMIT_NPROC,
    }
    for key, which in mapping.items():
        if limits.get(key):
            resource.setrlimit(which, (int(limits[key]), int(limits[key])))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def main(argv):
    if len(argv) != 3:
        sys.stderr.write("usage: driver.py CMD_FD RESULT_FD\n")
        return 2
    channel = Channel(int(argv[1]), int(argv[2]))
    try:
        # A lone surrogate printed by the agent is shown escaped instead of raising in its code.
        sys.stdout.reconfigure(line_buffering=True, errors="backslashreplace")
        sys.stderr.reconfigure(line_buffering=True, errors="backslashreplace")
    except AttributeError:
        pass
    sys.stdin = io.StringIO("")
    # `-I` ignores PYTHONDONTWRITEBYTECODE: without this, importing the project from the REPL
    # leaves __pycache__ in the checkout, and a reviewing sub-agent's patch is all bytecode.
    sys.dont_write_bytecode = True
    Repl(channel).serve()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
