"""`lora-doctor run [options] -- COMMAND`: check, launch the training command untouched, explain a crash.

Everything lora-doctor itself prints goes to stderr; stdout carries the child's bytes only.
Exit code: the child's (a death by signal N is 128+N), 78 when the pre-flight checks found an
error and nothing was launched, 127/126 when the command cannot be started, 2 for usage errors.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

from lora_doctor.commands.common import add_check_options, parse_launch

EXIT_PREFLIGHT = 78  # sysexits EX_CONFIG: the checks found an error, the command was not launched
SILENT_FAILURES = (b"No data found",)  # a failure in the log of a run that exits 0 (sd-scripts train_network.py, train: it returns when the dataset is empty)


def add_parser(sub) -> None:
    p = sub.add_parser(
        "run", help="check a training command, launch it untouched, explain a crash",
        description="Run every check with the command as context, launch it exactly as given (same argv, "
                    "cwd, environment + PYTHONUNBUFFERED=1; in pipe mode a wide COLUMNS when unset), copy "
                    "its output to stdout unchanged and to a redacted log, and diagnose a failure. "
                    f"Exit code: the child's (signal N -> 128+N); {EXIT_PREFLIGHT} when a check found an error "
                    "and nothing was launched; 127/126 when the command cannot be started; 2 usage.")
    add_check_options(p)
    p.add_argument("--force", action="store_true",
                   help="launch even when a check finds an error (checks run alongside; shown after the run)")
    p.add_argument("--check-only", action="store_true", help="run the checks and stop (exit 0, or "
                   f"{EXIT_PREFLIGHT} on errors)")
    p.add_argument("--log", metavar="PATH", help="write the (redacted) log here "
                   "(default: <output_dir>/lora-doctor/<time>/train.log)")
    p.add_argument("--stop-on-nan", action="store_true", help="end the run as soon as the loss is NaN")
    p.set_defaults(handler=run, accepts_command=True)


def _stderr(text: str) -> None:
    """One of our own lines on stderr, secrets redacted (an exception message may hold one)."""
    from lora_doctor.redact import redact_text

    try:
        sys.stderr.write(redact_text(text) + "\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


def log_path_for(args, launch, cwd: Path) -> Path:
    """--log, else a new folder under the command's --output_dir, else under the user state folder."""
    if args.log:
        path = Path(args.log).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)  # OSError: the run goes on without a log
        return path
    stamp = time.strftime("%Y%m%d-%H%M%S")
    bases = []
    out = launch.options.get("output_dir") if launch else None
    if isinstance(out, str) and out:
        from lora_doctor.launch.command import resolve_path

        bases.append(resolve_path(out, cwd) / "lora-doctor")
    from platformdirs import user_state_dir

    bases.append(Path(user_state_dir("lora-doctor", appauthor=False)) / "runs")
    for base in bases:
        for n in range(100):
            folder = base / (stamp if n == 0 else f"{stamp}-{n}")
            try:
                folder.mkdir(parents=True, exist_ok=False)
            except FileExistsError:
                continue
            except OSError:
                break
            return folder / "train.log"
    raise OSError(f"cannot create a log folder under {bases[0]} (use --log PATH)")


class _Preflight:
    """The checks: run before the launch, or (with --force) alongside it."""

    def __init__(self, args, launch):
        self.args, self.launch = args, launch
        self.ctx = self.results = self.summary = self.host = None
        self.error = ""
        self.done = threading.Event()

    def run(self) -> None:
        from lora_doctor.errors import UsageError
        from lora_doctor.commands.common import run_all_checks

        try:
            self.ctx, self.results, self.summary, self.host = run_all_checks(self.args, self.launch)
        except UsageError:
            raise  # a bad --only is the user's to fix before anything launches
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            self.done.set()

    def start(self) -> None:
        threading.Thread(target=self.run, daemon=True, name="lora-doctor-preflight").start()

    def render(self, header: str) -> None:
        from lora_doctor.output.render import render_results

        if self.error:
            _stderr(f"lora-doctor: the checks could not run: {self.error}")
        elif self.results is not None:
            render_results(self.results, self.summary, verbose=self.args.verbose, stream=sys.stderr, header=header,
                           brief=True, wrap=True)


class _Watch:
    """The per-line callback: the plugins' lora_doctor_watch_line hooks, --stop-on-nan, and whether
    the loss went NaN (a run that exits 0 after that is not a success for the history)."""

    def __init__(self, preflight: _Preflight, stop_on_nan: bool):
        self.preflight = preflight
        self.stop_on_nan = stop_on_nan
        self.runner = None
        self.nan_stopped = False
        self.nan_seen = False
        try:
            from lora_doctor.diagnose.notable import loss_is_nan
        except ImportError:
            loss_is_nan = None
        self.loss_is_nan = loss_is_nan

    def __call__(self, line: str):
        if not self.nan_seen and self.loss_is_nan is not None and ("nan" in line or "NaN" in line or "NAN" in line):
            self.nan_seen = bool(self.loss_is_nan(line))
        if self.stop_on_nan and not self.nan_stopped and self.nan_seen and self.runner is not None:
            self.nan_stopped = True
            self.runner.stop("nan")
            self.runner.hint("--stop-on-nan: the loss is NaN, stopping the run.")
        pre = self.preflight
        if pre.host is None:
            return None  # plugins still loading (--force): the first lines go unwatched
        pre.host.watch_line(line, pre.ctx, self.runner.hint)  # off this thread; hints arrive via runner.hint
        return None


def run(args) -> int:
    from lora_doctor.errors import UsageError

    if not args.command:
        raise UsageError("give the training command after '--', e.g. lora-doctor run -- accelerate launch "
                         "train_network.py …")
    if args.json and not args.check_only:
        raise UsageError("--json goes with --check-only (stdout carries the training output)")
    cwd = Path.cwd()
    launch = parse_launch(args.command)
    pre = _Preflight(args, launch)
    if args.force and args.only:  # the checks run alongside the child: catch a misspelled --only first
        from lora_doctor.commands.common import load_checks, validate_selection

        validate_selection(load_checks(args.plugin_dir)[1], args.only, args.skip)
    if not args.force or args.check_only:
        pre.run()
        if args.json:
            from lora_doctor.output.render import print_json
            from lora_doctor.commands.env import report_json

            print_json(report_json(pre.ctx, pre.results, pre.summary))
        else:
            pre.render(f"lora-doctor: checking {launch.script or ' '.join(args.command[:2])} "
                       f"for {pre.ctx.python if pre.ctx else '?'}")
        errors = pre.summary["errors"] if pre.summary else 0
        if args.check_only:
            return EXIT_PREFLIGHT if errors else 0
        if errors:
            _stderr(f"lora-doctor: not launching: the checks found {errors} error{'s' * (errors != 1)} "
                    f"(fix them, or launch anyway with --force). Exit code {EXIT_PREFLIGHT}.")
            return EXIT_PREFLIGHT
    return launch_and_explain(args, launch, pre, cwd)


def launch_and_explain(args, launch, pre: _Preflight, cwd: Path) -> int:
    from lora_doctor.run.runner import Runner

    try:
        log_path = log_path_for(args, launch, cwd)
    except OSError as exc:  # a log that cannot be written ends the log, never the run
        where = f"--log {args.log}: {exc.strerror or exc}" if args.log else str(exc)
        _stderr(f"lora-doctor: warning: running without a log ({where}); no diagnosis after a crash")
        log_path = None
    watch = _Watch(pre, args.stop_on_nan)
    runner = Runner(list(args.command), cwd=str(cwd), log_path=str(log_path) if log_path else None, on_line=watch,
                    fragments=SILENT_FAILURES, on_spawn=pre.start if args.force else None)
    watch.runner = runner
    try:
        result = runner.run()
    except OSError as exc:
        code = 126 if isinstance(exc, PermissionError) else 127
        _stderr(f"lora-doctor run: cannot start {args.command[0]}: {exc.strerror or exc}"
                + (" (is the sd-scripts virtual environment activated?)" if code == 127 else ""))
        return code
    try:
        if pre.host is not None:
            pre.host.finish_watching()  # the watchers' hints for the last lines (at most 1 s)
            result.hints = list(runner.hints)
    except Exception:  # noqa: BLE001 - the hints are a nicety; the exit code is the child's
        pass
    if watch.nan_seen and not result.silent_failure:
        result.silent_failure = "the loss went NaN"
    try:
        postmortem(args, launch, pre, result, log_path)
    except Exception as exc:  # the explanation must never change the exit code
        _stderr(f"lora-doctor: could not explain the run ({_why(exc)}); log: {log_path}")
    return result.exit_code


def _exit_cause(result) -> dict:
    from lora_doctor.exits import from_returncode

    cause = from_returncode(result.returncode, result.stopped)
    if result.silent_failure and result.exit_code == 0:
        cause.description += f"; but {_silent_text(result.silent_failure)}"
    return cause.to_json()


def _silent_text(fragment: str) -> str:
    return fragment if fragment.startswith("the loss") else f"its log says {fragment!r}"


def postmortem(args, launch, pre: _Preflight, result, log_path: Path | None) -> None:
    """Diagnose a failed run, write report.json, record the run in the history: each step on its
    own, so that one failing (a full disk under the log) never costs the others."""
    failed = result.exit_code != 0 or bool(result.silent_failure)
    if args.force:
        pre.done.wait(10)
        if pre.summary and (pre.summary["errors"] or pre.summary["warnings"]):
            pre.render("lora-doctor: the checks (run alongside the launch because of --force)")
    facts = {}
    if pre.ctx is not None and pre.ctx.facts.ready:
        facts = pre.ctx.facts.get()
    report = None
    readable = log_path is not None and log_path.is_file()  # not for --log /dev/null, nor without a log
    if failed and result.stopped not in ("interrupted", "terminated"):
        if result.silent_failure and result.exit_code == 0:
            outcome = ("the weights it saved are NaN" if result.silent_failure.startswith("the loss")
                       else "nothing was trained")
            _stderr(f"lora-doctor: the run exited 0, but {_silent_text(result.silent_failure)}: {outcome}.")
        if readable:
            try:
                report = _diagnose(args, launch, facts, result, log_path)
            except Exception as exc:  # noqa: BLE001 - the report and the history still get written
                _stderr(f"lora-doctor: the diagnosis failed ({_why(exc)}); read the log: {log_path}")
    report_path = None
    if readable:
        report_path = log_path.parent / "report.json" if not args.log else log_path.with_suffix(".report.json")
        try:
            _write_report(report_path, launch, pre, facts, result, report, log_path)
        except Exception as exc:  # noqa: BLE001 - disk full: say so, record the run anyway
            _stderr(f"lora-doctor: warning: could not write {report_path} "
                    f"({getattr(exc, 'strerror', None) or _why(exc)}); the run is still recorded in the history")
            report_path = None
    _record_history(launch, pre, facts, result, report, log_path, report_path)
    if failed:
        _stderr(f"lora-doctor: exit code {result.exit_code}; log: {log_path or 'none'}; report: {report_path or 'none'}")


def _why(exc: BaseException) -> str:
    """'Type: message' for a warning line, even when the exception's own str() raises."""
    try:
        return f"{type(exc).__name__}: {exc}"
    except Exception:  # noqa: BLE001 - a plugin's exception may not print; its type still says enough
        return type(exc).__name__


def _diagnose(args, launch, facts, result, log_path: Path):
    try:
        from lora_doctor.diagnose.render import render_report
        from lora_doctor.diagnose.match import diagnose_file
    except ImportError:
        _stderr(f"lora-doctor: the diagnosis is not available in this version; read the log: {log_path}")
        return None
    report = diagnose_file(str(log_path), launch=launch, facts=facts or None, exit_code=result.exit_code,
                           plugin_dirs=tuple(args.plugin_dir))
    render_report(report, sys.stderr, verbose=args.verbose)
    return report


def _write_report(path: Path, launch, pre, facts, result, report, log_path: Path) -> None:
    """report.json, secrets redacted in its values before it is serialized (the text stays valid
    JSON), written whole or not at all (a temporary file renamed into place)."""
    import os
    import tempfile

    from lora_doctor.redact import redact_obj

    data = redact_obj({
        "command": list(launch.argv),
        "cwd": str(Path.cwd()),
        "script": launch.script,
        "log": str(log_path),
        "mode": result.mode,
        "started_at": result.started_at,
        "ended_at": result.ended_at,
        "exit": _exit_cause(result),
        "hints": result.hints,
        "silent_failure": result.silent_failure or None,
        "findings": [r.to_json() for r in pre.results] if pre.results else [],
        "facts": facts,
        "diagnosis": report.to_json() if report is not None else None,
    })
    text = json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n"
    fd, tmp = tempfile.mkstemp(prefix=".report-", suffix=".tmp", dir=str(path.parent))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _record_history(launch, pre, facts, result, report, log_path, report_path) -> None:
    """One row in the history (never raises: a warning line when it cannot). The store redacts the
    command, the options (by name), the model and the facts before anything is written."""
    try:
        from lora_doctor.history import store as history

        top = (getattr(report, "diagnoses", None) or [None])[0]
        dataset_dirs = [str(launch.options[k]) for k in ("train_data_dir", "reg_data_dir", "dataset_config")
                        if isinstance(launch.options.get(k), str)]
        record = {
            "started_at": result.started_at, "ended_at": result.ended_at,
            "argv": list(launch.argv), "script": launch.script, "options": dict(launch.options),
            "cwd": str(Path.cwd()), "exit_code": result.exit_code,
            "exit_cause": _exit_cause(result)["description"],
            "silent_failure": result.silent_failure or None,
            "stopped": result.stopped or None,
            "diagnosis_id": getattr(top, "signature_id", None), "diagnosis_title": getattr(top, "title", None),
            "facts": facts or {}, "dataset_dirs": dataset_dirs,
            "model": launch.options.get("pretrained_model_name_or_path"),
            "log_path": None if log_path is None else str(log_path),
            "report_path": None if report_path is None else str(report_path),
        }
        run_id = history.record_run(record)
        if run_id is not None and (result.exit_code != 0 or result.silent_failure):
            text = history.previous_success_diff(run_id)
            if text:
                _stderr(text)
    except (ImportError, AttributeError):
        pass
    except Exception as exc:
        _stderr(f"lora-doctor: could not record the run in the history ({_why(exc)})")
