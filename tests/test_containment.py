"""Containment: hostile agent code and hostile repositories against the local sandbox, as root.

Each test plays one attack through the real sandbox and REPL (bwrap, cgroups, the driver) or the
host's real git, and asserts it fails. CI runs as root: exactly the case where bwrap used to leave
the agent its capabilities. Every cap is small and every block has a timeout, so an attack that
got through would end quickly instead of taking the machine down.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import textwrap
import threading
from pathlib import Path

import pytest

from bot.rlm import load_config
from bot.rlm.patch import FILE_TOO_LARGE, PATCH_TOO_LARGE, PatchTooLarge
from bot.rlm.repl.session import MESSAGE_TOO_LARGE, ReplSession
from bot.rlm.repo import prepare_repo
from bot.rlm.sandbox.local import provider as local
from bot.rlm.sandbox.local import roots
from bot.rlm.sandbox.local.isolation import cgroups
from bot.rlm.sandbox.local.isolation.bwrap import SANDBOX_UID, SANDBOX_USER, bwrap_works
from bot.rlm.sandbox.local.provider import LocalSandboxProvider
from bot.rlm.sandbox.local.sandbox import MEMORY_CAP_HIT

needs_bwrap = pytest.mark.skipif(not bwrap_works(), reason="bubblewrap cannot run here")
needs_caps = pytest.mark.skipif(
    not (cgroups.available() or (bwrap_works() and os.getuid() != 0)),
    reason="no writable cgroup and running as root: processes and memory cannot be capped here",
)
LIMITS = {"sandbox.max_processes": 64, "sandbox.memory_mb": 256, "sandbox.disk_mb": 32}
# The host's patch reads a copy's work tree or a copy-on-write sandbox's upper layer: both are attacked.
both_checkouts = pytest.mark.parametrize("checkouts", ["overlay", "copy"])


class Box:
    """One real local sandbox with its REPL, for attacks played directly through the API."""

    def __init__(self, tmp: Path, repo_dir: Path, overrides: dict):
        values = {"sandbox.cache_dir": str(tmp / "cache"), **LIMITS, **overrides}
        self.config = load_config(None, values, environ={})
        self.repo = prepare_repo(str(repo_dir), self.config.cache_root())
        self.provider = LocalSandboxProvider(self.config, self.repo, "containment")
        self.sandbox = self.provider.create("root")
        self.session = self.start()

    def start(self) -> ReplSession:
        session = ReplSession(self.sandbox.start_driver())
        session.start({"task": "attack", "output_limit": 20000, "limits": self.sandbox.init_limits()})
        return session

    def run(self, code: str, timeout: float = 20):
        return self.session.execute(textwrap.dedent(code), timeout, lambda fn, args: None, lambda: None)


def host_git_dir(b: Box) -> Path:
    """The git dir the host made for the sandbox's checkout: a copy's private one (read-only
    inside), or the shared checkout's (copy-on-write: not even visible inside; the agent's own
    writes to .git land in its upper layer, which the host never uses as a git dir)."""
    if b.provider.copy_on_write:
        return b.provider.checkouts.shared.tree / ".git"
    return b.sandbox.checkout.admin


@pytest.fixture
def box(tmp_path, make_repo):
    made: list[Box] = []

    def make(files: dict | None = None, **overrides) -> Box:
        repo_dir, _ = make_repo(files)
        made.append(Box(tmp_path, repo_dir, {k.replace("__", "."): v for k, v in overrides.items()}))
        return made[-1]

    yield make
    for b in made:
        b.provider.close()


# ---------------------------------------------------------------------------- privileges


@needs_bwrap
def test_agent_runs_unprivileged_with_no_capabilities(box):
    b = box()
    result = b.run(
        """
        import os, getpass
        status = dict(line.split(":\\t", 1) for line in open("/proc/self/status").read().splitlines() if ":\\t" in line)
        print({k: status[k].strip() for k in ("CapEff", "CapPrm", "CapBnd", "CapAmb", "NoNewPrivs")})
        print(os.getuid(), os.getgid(), getpass.getuser())
        """
    )
    assert result.error is None, result.error
    caps, ids = result.stdout.strip().splitlines()
    assert eval(caps) == {
        "CapEff": "0" * 16,
        "CapPrm": "0" * 16,
        "CapBnd": "0" * 16,
        "CapAmb": "0" * 16,
        "NoNewPrivs": "1",
    }
    assert ids == f"{SANDBOX_UID} {SANDBOX_UID} {SANDBOX_USER}"


@needs_bwrap
def test_remounts_and_writes_outside_the_checkout_are_refused(box):
    b = box()
    cache, admin = str(b.repo.cache), str(host_git_dir(b))
    result = b.run(
        f"""
        import os, subprocess
        outcomes = {{}}
        for target in ("/", "/usr", "/etc", "/proc/sys", "/dev", {cache!r}, {admin!r}):
            proc = subprocess.run(["mount", "-o", "remount,bind,rw", target], capture_output=True)
            outcomes["remount " + target] = proc.returncode
        for path in ("/planted", "/dev/planted", "/etc/planted", "/usr/planted", {cache!r} + "/config",
                     {admin!r} + "/config", {admin!r} + "/hooks/post-checkout"):
            try:
                with open(path, "a") as f:
                    f.write("[filter \\"x\\"]\\n")
                outcomes[path] = "written"
            except OSError as e:
                outcomes[path] = type(e).__name__
        outcomes["userns"] = subprocess.run(["unshare", "-U", "true"], capture_output=True).returncode
        # The sandbox's uid maps to root outside: a root-owned sysctl such as core_pattern (run by
        # the host kernel as root on a crash) must still not open for writing.
        for path in ("/proc/sys/kernel/core_pattern", "/proc/sysrq-trigger"):
            try:
                os.close(os.open(path, os.O_WRONLY))
                outcomes[path] = "written"
            except OSError as e:
                outcomes[path] = type(e).__name__
        open("inside.txt", "w").write("fine")  # the checkout itself stays writable
        print(outcomes)
        """
    )
    assert result.error is None, result.error
    outcomes = eval(result.stdout)
    assert all(v != 0 for k, v in outcomes.items() if k.startswith("remount") or k == "userns"), outcomes
    assert not any(v == "written" for v in outcomes.values()), outcomes
    assert "filter" not in (b.repo.cache / "config").read_text()
    assert "filter" not in (host_git_dir(b) / "config").read_text()
    assert "+fine" in b.sandbox.diff()


@needs_bwrap
def test_etc_is_minimal_and_holds_no_secrets(box):
    b = box()
    result = b.run(
        """
        import os
        print(sorted(p for p in ("shadow", "gshadow", "sudoers", "ssh", "sudoers.d", "machine-id", "ssl/private")
                     if os.path.lexists("/etc/" + p)))
        print(open("/etc/passwd").read().count("\\n"), os.path.exists("/etc/ld.so.cache"))
        """
    )
    assert result.error is None, result.error
    absent, sizes = result.stdout.strip().splitlines()
    assert absent == "[]"
    assert sizes == "3 True"


# ---------------------------------------------------------------------------- the host's git


def _plant_operator_filter(home: Path, marker: Path) -> None:
    """The operator's own ~/.gitconfig defines a filter that would run on the host."""
    home.mkdir(exist_ok=True)
    cmd = f"\"sh -c 'echo ran >> {marker}; cat'\""  # quoted: a bare ; starts a comment
    (home / ".gitconfig").write_text(f'[filter "op"]\n\tclean = {cmd}\n\tsmudge = {cmd}\n')


@both_checkouts
def test_repository_gitattributes_never_run_the_operators_filter(box, tmp_path, monkeypatch, checkouts):
    marker = tmp_path / "marker-repo"
    _plant_operator_filter(tmp_path / "operator", marker)
    monkeypatch.setenv("HOME", str(tmp_path / "operator"))
    b = box({".gitattributes": "* filter=op\n", "a.txt": "hello\n"}, sandbox__checkouts=checkouts)
    b.run('open("a.txt", "a").write("more\\n")\nopen("new.txt", "w").write("x\\n")')
    patch = b.sandbox.diff()
    assert "+more" in patch and "new.txt" in patch
    assert not marker.exists()


@both_checkouts
def test_a_filter_planted_in_the_sandbox_git_dir_never_runs_on_the_host(box, tmp_path, checkouts):
    marker = tmp_path / "marker-agent"
    b = box({"a.txt": "hello\n"}, sandbox__checkouts=checkouts)
    # What a remount (or the no-bwrap fallback) would let an agent do: its git dir's config
    # names a filter, and its checkout's .gitattributes applies it to every file.
    planted = f'[filter "evil"]\n\tclean = "sh -c \'env > {marker}; cat\'"\n'
    planted += f"[core]\n\tfsmonitor = \"sh -c 'env > {marker}.fsmonitor'\"\n"
    if b.provider.copy_on_write:  # the agent's git dir is its own copy: it plants the filter itself
        b.run(f"_ = open('.git/config', 'a').write({planted!r})")
    else:
        with open(host_git_dir(b) / "config", "a") as f:
            f.write(planted)
    b.run('open(".gitattributes", "w").write("* filter=evil\\n")\nopen("a.txt", "a").write("more\\n")')
    patch = b.sandbox.diff()
    assert "+more" in patch
    assert not marker.exists() and not Path(f"{marker}.fsmonitor").exists()


@both_checkouts
def test_a_nested_repository_made_by_the_agent_runs_nothing_on_the_host(box, tmp_path, checkouts):
    marker = tmp_path / "marker-nested"
    b = box({"a.txt": "hello\n"}, sandbox__checkouts=checkouts)
    b.run(
        f"""
        import subprocess
        subprocess.run(["git", "init", "-q", "sub"], check=True)
        open("sub/y.txt", "w").write("y\\n")
        subprocess.run("cd sub && git add y.txt && git -c user.name=a -c user.email=a@b commit -qm y",
                       shell=True, check=True)
        with open("sub/.git/config", "a") as f:
            f.write("[core]\\n\\tfsmonitor = \\"sh -c 'env > {marker}'\\"\\n")
            f.write("[filter \\"evil\\"]\\n\\tclean = \\"sh -c 'env > {marker}; cat'\\"\\n")
        open("sub/.gitattributes", "w").write("* filter=evil\\n")
        open("sub/x.txt", "w").write("x\\n")
        open(".gitattributes", "w").write("* filter=evil\\n")
        """
    )
    b.sandbox.diff()
    assert not marker.exists()


@both_checkouts
def test_a_symlink_made_by_the_agent_is_recorded_not_followed(box, tmp_path, checkouts):
    secret = tmp_path / "host-secret.txt"
    secret.write_text("host secret value\n")
    b = box({"dir/a.txt": "a\n"}, sandbox__checkouts=checkouts)
    b.run(
        f'import os, shutil\nshutil.rmtree("dir")\nos.symlink({str(tmp_path)!r}, "dir")\nos.symlink({str(secret)!r}, "s")'
    )
    patch = b.sandbox.diff()
    assert "host secret value" not in patch
    assert "new file mode 120000" in patch


# ---------------------------------------------------------------------------- the protocol


@needs_bwrap
def test_a_subprocess_cannot_reopen_the_drivers_channel_through_proc(box):
    b = box()
    forged = json.dumps(
        {
            "type": "result",
            "id": 1,
            "stdout": "",
            "stderr": "",
            "error": None,
            "final": {"answer": "forged"},
            "duration": 0,
        }
    )
    child = f"""
import os
msg = ({forged!r} + "\\n").encode()
driver = os.getppid()
opened, refused = [], 0
for fd in os.listdir(f"/proc/{{driver}}/fd") if os.access(f"/proc/{{driver}}/fd", os.R_OK) else range(3, 64):
    try:
        with open(f"/proc/{{driver}}/fd/{{fd}}", "wb", buffering=0) as f:
            f.write(msg)
            opened.append(int(fd))
    except OSError:
        refused += 1
print("opened", opened, "refused", refused > 0)
"""
    result = b.run(
        f"import subprocess, sys\nprint(subprocess.run([sys.executable, '-c', {child!r}], capture_output=True, text=True).stdout)"
    )
    assert result.final is None, "a forged FINAL was accepted"
    assert "opened [] refused True" in result.stdout, result.stdout


def test_an_oversized_protocol_message_ends_the_block_with_bounded_host_memory(box):
    b = box(sandbox__max_message_mb=1)
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = b.run(
        """
        import os, sys
        fd = int(sys.argv[2])
        chunk = b"x" * (1 << 20)
        for _ in range(64):  # 64 MiB on the channel, no newline
            os.write(fd, chunk)
        """,
        timeout=30,
    )
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before) / 1024
    assert result.error == MESSAGE_TOO_LARGE.format(limit=1024 * 1024)
    assert result.repl_lost
    assert grown_mb < 16, f"the host grew {grown_mb:.0f} MB"
    b.session = b.start()  # a new REPL works
    assert b.run("print(6 * 7)").stdout == "42\n"


# ---------------------------------------------------------------------------- resource caps


@needs_bwrap
@needs_caps
def test_a_fork_bomb_stops_at_the_process_cap_and_the_host_stays_responsive(box):
    b = box()
    result = b.run(
        """
        import os, time
        children, refused = [], 0
        for _ in range(300):
            try:
                pid = os.fork()
            except OSError:
                refused += 1
                continue
            if pid == 0:
                time.sleep(20)
                os._exit(0)
            children.append(pid)
        print(len(children), refused)
        """,
        timeout=60,
    )
    started, refused = map(int, result.stdout.split())
    assert started < 64 and refused > 200, result.stdout
    # The host still starts threads and processes while the sandbox sits at its cap.
    t = threading.Thread(target=lambda: None)
    t.start()
    t.join()
    assert subprocess.run(["true"], timeout=10).returncode == 0
    b.sandbox.destroy()  # every process of the bomb goes with the sandbox
    assert b.sandbox.cgroup is None or b.sandbox.cgroup.pids() == []


@needs_bwrap
@pytest.mark.skipif(not cgroups.available(), reason="no writable cgroup: memory is capped per process only")
def test_memory_is_capped_for_the_sandbox_as_a_whole(box):
    b = box()
    # Four processes of 100 MB each: every one is under the per-process limit (256 MB), the
    # four together are not.
    result = b.run(
        """
        import subprocess, sys
        code = "b = bytearray(100 * 1024 * 1024)\\nfor i in range(0, len(b), 4096): b[i] = 1\\nimport time; time.sleep(3); print('ok')"
        procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL) for _ in range(4)]
        print([p.communicate()[0].decode().strip() for p in procs])
        """,
        timeout=60,
    )
    survivors = eval(result.stdout.strip().splitlines()[-1]) if result.error is None else []
    assert survivors.count("ok") < 4, result.stdout
    assert b.sandbox.cap_hit() == MEMORY_CAP_HIT.format(mb=256)


@needs_bwrap
def test_tmp_and_each_file_are_capped_on_disk(box):
    b = box()
    result = b.run(
        """
        def fill(path, mb):
            written = 0
            try:
                with open(path, "wb") as f:
                    for _ in range(mb):
                        f.write(b"\\0" * (1 << 20))
                        f.flush()
                        written += 1
            except OSError as e:
                return written, e.errno
            return written, 0
        import os
        outcome = fill("/tmp/big", 48), fill("in-checkout.bin", 48)
        os.remove("/tmp/big")  # the block's own output is captured in /tmp too
        print(outcome)
        """,
        timeout=60,
    )
    assert result.error is None, result.error
    (tmp_written, tmp_err), (co_written, co_err) = eval(result.stdout)
    assert tmp_written <= 32 and tmp_err != 0
    assert co_written <= 32 and co_err != 0


@needs_bwrap
@pytest.mark.skipif(not cgroups.available(), reason="no writable cgroup: memory is capped per process only")
def test_checkout_writes_in_memory_count_against_the_memory_cap(box):
    b = box()
    if not b.sandbox.path.is_relative_to(roots.SHM):
        pytest.skip("the checkout is on disk here, not in memory-backed /dev/shm")
    result = b.run(
        """
        for i in range(16):  # 480 MB into the checkout (30 MB files), against a 256 MB sandbox
            with open(f"f{i}.bin", "wb") as f:
                for _ in range(30):
                    f.write(b"\\1" * (1 << 20))
        """,
        timeout=60,
    )
    assert result.repl_lost
    assert MEMORY_CAP_HIT.format(mb=256) in result.error


@both_checkouts
def test_an_oversized_patch_is_refused_with_a_clear_reason(box, checkouts):
    b = box(rlm__max_patch_bytes=64 * 1024, sandbox__checkouts=checkouts)
    b.run("import os\nopen('blob.bin', 'wb').write(os.urandom(512 * 1024))")
    with pytest.raises(PatchTooLarge) as refused:
        b.sandbox.diff()
    if checkouts == "overlay":  # refused from the file's size, before it is read
        assert str(refused.value) == FILE_TOO_LARGE.format(path="blob.bin", size=512 * 1024, limit=64 * 1024)
    else:
        assert str(refused.value) == PATCH_TOO_LARGE.format(limit=64 * 1024)


# ---------------------------------------------------------------------------- owned directories


def _victim_tree(base: Path, victim: subprocess.Popen) -> Path:
    """Another user's look-alike sandbox root, with an owner file naming their live process."""
    rollout = base / "sandboxes" / "victims-rollout"
    rollout.mkdir(parents=True)
    (rollout / "precious.txt").write_text("theirs")
    (rollout / "owner.json").write_text(
        json.dumps(
            {"pid": 1, "start": "0", "pids": [victim.pid], "owner": [1, "0"], "drivers": [[victim.pid, "0"]]}
        )
    )
    for path in [base, *base.rglob("*")]:
        os.chown(path, 65534, 65534, follow_symlinks=False)
    return rollout


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to create another user's files")
def test_a_squatted_shm_directory_is_neither_followed_nor_deleted(make_repo, tmp_path, monkeypatch):

    repo_dir, _ = make_repo()
    config = load_config(None, {"sandbox.cache_dir": str(tmp_path / "cache"), **LIMITS}, environ={})
    prepared = prepare_repo(str(repo_dir), config.cache_root())
    victim = subprocess.Popen(["sleep", "60"], user=65534, group=65534, start_new_session=True)
    squat = roots.shm_root(config.cache_root())  # the real /dev/shm/rlm-bot-<uid>/<digest>
    try:
        squat.parent.mkdir(parents=True, exist_ok=True)
        rollout = _victim_tree(squat, victim)
        provider = LocalSandboxProvider(config, prepared, "mine")
        try:
            assert not provider.root.is_relative_to(squat)  # not entered: checkouts went elsewhere
            assert provider.create("root").path.is_dir()
        finally:
            provider.close()
        assert (rollout / "precious.txt").read_text() == "theirs"
        assert victim.poll() is None, "a process named in another user's owner file was killed"
        # The same squat one level up, as a symlink: not followed.
        elsewhere = tmp_path / "victim-home"
        elsewhere.mkdir()
        os.chown(elsewhere, 65534, 65534)
        monkeypatch.setattr(roots, "SHM", tmp_path / "shm")
        monkeypatch.setattr(local, "SHM", tmp_path / "shm")
        (tmp_path / "shm").mkdir()
        os.symlink(elsewhere, roots.shm_root(config.cache_root()).parent)
        link_rollout = _victim_tree(elsewhere / roots.shm_root(config.cache_root()).name, victim)
        roots.reap_leftovers(config.cache_root())
        provider = LocalSandboxProvider(config, prepared, "mine2")
        provider.close()
        assert (link_rollout / "precious.txt").exists()
        assert victim.poll() is None
    finally:
        victim.kill()
        victim.wait()
        subprocess.run(["rm", "-rf", str(squat)], check=False)


def test_reaping_signals_only_processes_it_can_prove_it_started(tmp_path):

    cache = tmp_path / "cache"
    bystander = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        dead = cache / "sandboxes" / "dead-rollout"
        dead.mkdir(parents=True, mode=0o700)
        (cache / "sandboxes").chmod(0o700)
        # A dead owner; a driver entry whose pid is now someone else's (wrong start time).
        (dead / "owner.json").write_text(
            json.dumps({"owner": [2**22 + 5, "1"], "drivers": [[bystander.pid, "1"]]})
        )
        assert roots.reap_leftovers(cache) == ["dead-rollout"]
        assert not dead.exists()
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()


def test_work_and_cache_roots_are_private(box):
    b = box()
    for path in (b.provider.root, b.provider.root.parent):
        assert os.lstat(path).st_mode & 0o077 == 0, oct(os.lstat(path).st_mode)


def test_an_oversized_root_patch_is_a_clear_outcome_of_the_run(make_repo, write_script, make_config):
    from bot.rlm import engine
    from tests.conftest import py

    repo, _ = make_repo()
    code = "import os\nopen('blob.bin', 'wb').write(os.urandom(512 * 1024))\nFINAL('done')"
    config = make_config(
        write_script([{"task": "", "responses": [py(code)]}]), **{"rlm.max_patch_bytes": 65536}
    )
    result = engine.run(config, engine.prepare(config, str(repo)), "Make a big file")
    assert result.status == "error"
    too_large = (
        PATCH_TOO_LARGE.format(limit=65536),
        FILE_TOO_LARGE.format(path="blob.bin", size=512 * 1024, limit=65536),
    )
    assert result.error in too_large
    assert result.patch == ""
    assert json.loads(Path(result.results_path).read_text())["status"] == "error"
