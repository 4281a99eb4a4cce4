"""A user's bad input, through the whole `cerebro` command line: one `error:` line that names the input, says what
is wrong and what is expected, exit code 2, and no traceback unless `cerebro --debug` asks for one."""
from __future__ import annotations

import random

import pytest
from typer.testing import CliRunner

from flows.cli import app

runner = CliRunner()


@pytest.fixture
def files(tmp_path):
    """The bad files of the table, by name."""
    rng = random.Random(7)
    made = {
        "binary.csv": bytes(rng.getrandbits(8) for _ in range(20_000)),  # NUL bytes and all
        "image.csv": b"\x89PNG\r\n\x1a\n" + bytes(rng.getrandbits(8) for _ in range(5_000)),
        "header-only.csv": b"timestamp,service,metric,value\n",
        "long-line.csv": b"timestamp,value\n2026-01-01T00:00:00Z,1\n" + b"x" * 10_000_000
                         + b"\n2026-01-01T00:01:00Z,2\n",
        "not-parquet.parquet": b"timestamp,value\n2026-01-01T00:00:00Z,1\n",
    }
    for name, data in made.items():
        (tmp_path / name).write_bytes(data)
    (tmp_path / "a-folder").mkdir()
    return tmp_path


@pytest.fixture
def no_aws_credentials(monkeypatch, tmp_path):
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_WEB_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no instance role to ask for


OUT = ["--output", "{dir}/scores.csv"]
# (arguments, what the error line must name, what it must say); {dir} is the folder of the files above.
TABLE = [
    (["detect", "--input", "{dir}/binary.csv", *OUT], "binary.csv", "binary content, not text; expected a CSV"),
    (["detect", "--input", "{dir}/image.csv", *OUT], "image.csv", "binary content, not text; expected a CSV"),
    (["detect", "--input", "{dir}/header-only.csv", *OUT], "header-only.csv", "no data rows under the header"),
    (["detect", "--input", "{dir}/long-line.csv", *OUT], "long-line.csv", "line 3 is 10.0 MB long; expected CSV lines"),
    (["detect", "--input", "{dir}/not-parquet.parquet", *OUT], "not-parquet.parquet", "not a readable Parquet file"),
    (["forecast", "--input", "{dir}/binary.csv", "--horizon", "3", *OUT], "binary.csv", "binary content, not text"),
    (["forecast", "--input", "{dir}/a-folder", "--horizon", "3", *OUT], "a-folder", "is a directory; expected a CSV"),
    (["forecast", "--input", "{dir}/nope.csv", "--horizon", "3", *OUT], "nope.csv", "no such file; expected a CSV"),
    (["ingest", "--source", "s3://cerebro-no-bucket/telemetry.csv"], "s3://cerebro-no-bucket/telemetry.csv",
     "no AWS credentials found; expected AWS_ACCESS_KEY_ID"),
    (["ingest", "--source", "prometheus://127.0.0.1:1"], "prometheus:http://127.0.0.1:1",
     "no Prometheus queries configured; expected sources.prometheus.queries"),
    (["ingest", "--source", "cloudwatch://Cerebro"], "cloudwatch:Cerebro", "no CloudWatch metrics configured"),
    (["ingest", "--source", "ftp://host/x.csv"], "ftp://host/x.csv", "unknown source scheme 'ftp'"),
    (["ingest", "--incidents", "{dir}/a-folder"], "a-folder", "is a directory; expected a CSV or JSON file"),
]


@pytest.mark.parametrize("args, names, says", TABLE, ids=[" ".join(a[:3]).replace("{dir}/", "") for a, _, _ in TABLE])
def test_bad_input_is_one_error_line_with_exit_code_2(args, names, says, files, home, no_aws_credentials):
    result = runner.invoke(app, [a.format(dir=files) for a in args], terminal_width=120)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and len(lines) == 1, result.output
    assert lines[0].startswith("error: ") and names in lines[0] and says in lines[0], lines[0]


def test_an_unreachable_prometheus_is_named_before_any_flow_starts(home, monkeypatch):
    monkeypatch.setenv("CEREBRO_SOURCES__PROMETHEUS__QUERIES", '{"cpu_pct": "avg by (service) (cpu)"}')
    result = runner.invoke(app, ["ingest", "--source", "prometheus://127.0.0.1:1"], terminal_width=120)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.output.strip() == ("error: prometheus:http://127.0.0.1:1: cannot connect (Connection refused); "
                                     "expected a Prometheus server at that address (prometheus://host:9090)")
    assert not (home / "prefect").exists() or not any((home / "prefect").rglob("*.db"))  # Prefect never started


def test_debug_shows_the_traceback_of_a_refused_input(files, home):
    result = runner.invoke(app, ["--debug", "forecast", "--input", str(files / "binary.csv"), "--horizon", "3",
                                 "--output", str(files / "out.csv")], terminal_width=120)
    assert result.exit_code == 2
    assert "Traceback" in result.output and "SchemaError" in result.output
    assert result.output.rstrip().splitlines()[-1].startswith("error: ")


def test_a_bug_is_not_dressed_up_as_the_users_mistake(files, home, monkeypatch):
    import training.series_detection

    def broken(*args, **kwargs):
        raise KeyError("a bug in the detector")

    monkeypatch.setattr(training.series_detection, "detect_user_series", broken)
    good = files / "good.csv"
    good.write_text("timestamp,value\n" + "".join(f"2026-01-01T00:{m:02d}:00Z,{m % 7}\n" for m in range(60)))
    result = runner.invoke(app, ["detect", "--input", str(good), "--output", str(files / "out.csv")])
    assert result.exit_code == 1 and isinstance(result.exception, KeyError)  # left to the traceback handler
