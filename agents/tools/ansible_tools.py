"""Ansible playbooks with ``ansible-runner``: only playbooks in the configured folder, run against the
configured inventory (localhost with a local connection by default). A dry run is ``ansible-playbook --check``.
"""
from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from pydantic import Field

from agents.tools.registry import Tool, ToolArgs, ToolError

LOCAL_INVENTORY = "localhost ansible_connection=local"


class PlaybookArgs(ToolArgs):
    playbook: str = Field(pattern=r"^[A-Za-z0-9_.-]+\.ya?ml$",
                          description="a playbook file name in the configured playbook folder")
    extra_vars: dict[str, str | int | float | bool] = Field(default_factory=dict)
    service: str | None = Field(default=None, description="the service the playbook changes (for the blast radius)")


def _run(playbook: Path, inventory: str, extra_vars: dict, check: bool) -> dict:
    import ansible_runner

    with tempfile.TemporaryDirectory(prefix="cerebro-ansible-") as tmp:
        bin_dir = str(Path(sys.executable).parent)  # ansible-playbook installed beside this Python
        env = {"PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}", "ANSIBLE_LOCAL_TEMP": f"{tmp}/tmp",
               "ANSIBLE_REMOTE_TEMP": f"{tmp}/remote", "ANSIBLE_NOCOLOR": "1",
               "ANSIBLE_PYTHON_INTERPRETER": sys.executable}
        result = ansible_runner.run(private_data_dir=tmp, playbook=str(playbook), inventory=inventory,
                                    extravars=dict(extra_vars), cmdline="--check --diff" if check else None,
                                    envvars=env, quiet=True)
        stats = result.stats or {}
        tasks = [{"task": e["event_data"].get("task"), "host": e["event_data"].get("host"),
                  "changed": bool(e["event_data"].get("res", {}).get("changed"))}
                 for e in result.events if e.get("event") == "runner_on_ok"]
        failed = [e["event_data"].get("task") for e in result.events if e.get("event") == "runner_on_failed"]
        return {"status": result.status, "rc": result.rc, "check": check, "tasks": tasks, "failed_tasks": failed,
                "changed": sum((stats.get("changed") or {}).values())}


def ansible_tools(playbook_dir: Path, inventory: str = LOCAL_INVENTORY) -> list[Tool]:
    folder = Path(playbook_dir).resolve()

    def run_playbook(args: PlaybookArgs, dry_run: bool) -> dict:
        path = (folder / args.playbook).resolve()
        if path.parent != folder or not path.is_file():
            known = sorted(p.name for p in folder.glob("*.y*ml")) if folder.is_dir() else []
            raise ToolError(f"no playbook {args.playbook!r} in {folder}" + (f"; known: {', '.join(known)}" if known
                                                                             else " (the folder holds none)"))
        out = _run(path, inventory, args.extra_vars, check=dry_run)
        if out["status"] != "successful":
            raise ToolError(f"playbook {args.playbook} {out['status']} (rc {out['rc']}); failed tasks: "
                            f"{', '.join(map(str, out['failed_tasks'])) or 'none reported'}")
        verb = "would change" if dry_run else "changed"
        return {"plan": f"run playbook {args.playbook} ({len(out['tasks'])} task result(s); {verb} "
                        f"{out['changed']})", "dry_run": dry_run, **out}

    return [Tool("ansible_playbook", "Run an approved Ansible playbook from the configured folder (check mode "
                 "in a dry run).", PlaybookArgs, run_playbook, risk="high", reversible=False, timeout_s=300,
                 rollback=lambda a: "run the playbook's own undo playbook if it has one; Ansible keeps no undo",
                 target=lambda a: a.service)]
