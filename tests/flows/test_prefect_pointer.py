"""`cerebro ui` points the `prefect` command typed in the checkout at its server; the project's own flows are not
redirected, and a prefect.toml of the user's own is never touched."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

API = "http://127.0.0.1:4200/api"


def test_cerebro_ui_points_the_prefect_command_and_never_its_own_flows(tmp_path, monkeypatch):
    from configs.runtime import configure_environment, ui_prefect_toml
    from configs.settings import load_settings
    from flows.services import point_prefect_command, unpoint_prefect_command

    monkeypatch.chdir(tmp_path)
    own = tmp_path / "prefect.toml"
    own.write_text('[api]\nurl = "http://prefect.example:4200/api"\n')
    assert point_prefect_command(API) is None and not unpoint_prefect_command()
    assert own.read_text().startswith("[api]")  # the user's file, untouched
    own.unlink()

    path = point_prefect_command(API)
    assert path == own and ui_prefect_toml() == own
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    view = subprocess.run([str(Path(sys.executable).parent / "prefect"), "config", "view"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert f"PREFECT_API_URL='{API}' (from prefect.toml)" in view.stdout, view.stdout + view.stderr

    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    configure_environment(load_settings(None, home=str(tmp_path / "home")))
    assert os.environ["PREFECT_API_URL"] == ""  # outranks the file: the flows keep the temporary server

    assert unpoint_prefect_command() and not own.exists() and ui_prefect_toml() is None
