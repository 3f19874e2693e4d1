#!/usr/bin/env python3
"""Run one command as a separate process and measure it.

    measure.py --timeout S --mem-limit-mb M --stdout F --stderr F -- CMD ARGS...

Prints one JSON line: status (ok | failed | timeout | memory-limit | signal),
exit code, wall seconds (start to exit), peak RSS in KiB (the kernel's
ru_maxrss of the process and any children it waited for, as
`/usr/bin/time -v` reports it), user and system CPU seconds, and the peak
VmRSS seen by sampling every 0.1 s. The command is killed (its whole process
group) after --timeout seconds ("timeout": did not finish) or when its RSS
exceeds --mem-limit-mb ("memory-limit"), so a runaway engine cannot push the
shared machine into the OOM killer. A kill by the kernel's OOM killer shows
up as status "signal" with signal 9.
"""
import argparse
import json
import os
import signal
import subprocess
import threading
import time


def vmrss_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--timeout", type=float, required=True)
    p.add_argument("--mem-limit-mb", type=float, default=0)
    p.add_argument("--stdout", required=True)
    p.add_argument("--stderr", required=True)
    p.add_argument("cmd", nargs=argparse.REMAINDER)
    a = p.parse_args()
    cmd = a.cmd[1:] if a.cmd and a.cmd[0] == "--" else a.cmd
    with open(a.stdout, "wb") as out, open(a.stderr, "wb") as err:
        t0 = time.monotonic()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL, start_new_session=True)
        done = {}

        def reap():
            _, status, ru = os.wait4(proc.pid, 0)
            done["t"] = time.monotonic()
            done["status"], done["ru"] = status, ru

        th = threading.Thread(target=reap, daemon=True)
        th.start()
        sampled, killed = 0, None
        while th.is_alive():
            sampled = max(sampled, vmrss_kb(proc.pid))
            elapsed = time.monotonic() - t0
            if killed is None:
                if elapsed > a.timeout:
                    killed = "timeout"
                elif a.mem_limit_mb and sampled > a.mem_limit_mb * 1024:
                    killed = "memory-limit"
                if killed:
                    try:
                        os.killpg(proc.pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
            th.join(0.1)
    status, ru = done["status"], done["ru"]
    res = {
        "wall_s": round(done["t"] - t0, 3),
        "maxrss_kb": ru.ru_maxrss,
        "sampled_rss_kb": sampled,
        "user_s": round(ru.ru_utime, 2),
        "sys_s": round(ru.ru_stime, 2),
    }
    if killed:
        res["status"] = killed
    elif os.WIFSIGNALED(status):
        res["status"], res["signal"] = "signal", os.WTERMSIG(status)
    else:
        code = os.WEXITSTATUS(status)
        res["status"], res["exit_code"] = ("ok" if code == 0 else "failed"), code
    print(json.dumps(res))


if __name__ == "__main__":
    main()
