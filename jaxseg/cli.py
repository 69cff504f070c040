"""jaxseg command line: `jaxseg` (the console command of the pip package) and
experiments/main.py run `run()`.

  jaxseg --config configs/scannet_svc.py [--config.a.b=value ...] [--resume]
  python experiments/main.py --config configs/scannet_svc.py ...      (the same)

Loads an ml_collections config (`get_config()` in the given file), rejects unknown keys and
bad values with a one-line reason, checks the work directory (writable; checkpoints to resume,
or none to overwrite), and only then writes the resolved config to `<workdir>/config.json` and
runs `config.mode` (prepare, train, eval or infer) of `config.method`. Bad input, environment
errors (permissions, full disk) and Ctrl-C end with one line, not a traceback.

Multi-process (multi-host) runs start the same command once per process, with
--coordinator_address/--num_processes/--process_id or --multihost (`jaxseg.distributed`); the
main process writes log.txt, the config, reports and exports, the others log.process<k>.txt.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import sys

from absl import app
from absl import flags
import ml_collections
from ml_collections import config_flags

# Light imports only: a bad config file or key is reported before jax and tfds load.
from jaxseg import config_utils, interrupts, logging_utils
from jaxseg.errors import InputError, errno_in_message, os_error

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Path to a config file with get_config(); override keys with "
    "--config.a.b=value.", lock_config=True)
_RESUME = flags.DEFINE_bool("resume", False,
                            "Continue from the newest checkpoint in the work directory.")
_COORDINATOR = flags.DEFINE_string(
    "coordinator_address", None, "Multi-process run: host:port of process 0's coordinator "
    "(with --num_processes and --process_id).")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None,
                                      "Multi-process run: how many processes take part.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None,
                                   "Multi-process run: this process's index, 0 .. count - 1.")
_MULTIHOST = flags.DEFINE_bool(
    "multihost", False, "Join a multi-process run whose settings the cluster provides (TPU "
    "pod metadata, SLURM srun, Open MPI, or JAX_COORDINATOR_ADDRESS / JAX_NUM_PROCESSES / "
    "JAX_PROCESS_ID).")
_EXAMPLE = "e.g. configs/scannet_svc.py"


def _config_path(argv: list[str]) -> str | None:
  for i, arg in enumerate(argv):
    if arg.startswith("--config="):
      return arg.split("=", 1)[1]
    if arg == "--config" and i + 1 < len(argv):
      return argv[i + 1]
  return None


def _load_config_file(path: str) -> ml_collections.ConfigDict:
  """get_config() of `file.py[:argument]`; exits with a one-line reason when it cannot load."""
  file_path, _, argument = path.partition(":")
  if not os.path.isfile(file_path):
    sys.exit(f"error: config file {file_path!r} not found; the configs are in the repository's "
             f"configs/ folder ({_EXAMPLE})")
  if not file_path.endswith(".py"):
    sys.exit(f"error: config file {file_path!r} is not a .py file; pass a Python file that "
             f"defines get_config() ({_EXAMPLE})")
  spec = importlib.util.spec_from_file_location("jaxseg_user_config", file_path)
  module = importlib.util.module_from_spec(spec)
  try:
    spec.loader.exec_module(module)
  except SyntaxError as e:
    sys.exit(f"error: config file {file_path!r} has a syntax error at line {e.lineno}: "
             f"{e.msg}; fix the file")
  except Exception as e:  # pylint: disable=broad-exception-caught
    sys.exit(f"error: config file {file_path!r} fails to load ({type(e).__name__}: {e}); fix "
             "the file")
  get_config = getattr(module, "get_config", None)
  if not callable(get_config):
    sys.exit(f"error: config file {file_path!r} defines no get_config(); every config file "
             f"returns its ml_collections.ConfigDict from get_config() ({_EXAMPLE})")
  try:
    config = get_config(argument) if argument else get_config()
  except Exception as e:  # pylint: disable=broad-exception-caught
    call = f"get_config({argument!r})" if argument else "get_config()"
    sys.exit(f"error: {call} of {file_path!r} failed ({type(e).__name__}: {e}); fix the file "
             "or the argument after ':'")
  if not isinstance(config, ml_collections.ConfigDict):
    sys.exit(f"error: get_config() of {file_path!r} returned {type(config).__name__}, not an "
             "ml_collections.ConfigDict; build it with jaxseg/config_defaults.py")
  missing = config_utils.missing_sections(config)
  if missing:
    sys.exit(f"error: the config of {file_path!r} has no {', '.join(map(repr, missing))} "
             "section; build it with jaxseg/config_defaults.py (base_config)")
  return config


_HELP_FLAGS = ("--help", "-h", "-?", "--helpshort", "--helpfull")


def _print_help(config_path: str | None) -> None:
  """The usage, the modes, methods and shipped configs, the flags, and with a config every key
  it accepts with its value."""
  from jaxseg import methods, modes  # pylint: disable=g-import-not-at-top  (loads jax)
  configs = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                         "configs")
  shipped = sorted(n for n in os.listdir(configs) if n.endswith(".py")) if os.path.isdir(
      configs) else []
  mode_lines = [line for line in modes.__doc__.splitlines() if line.startswith("  ")]
  lines = ["usage: jaxseg --config CONFIG.py[:ARG] [--config.KEY=VALUE ...] [--resume]",
           "       (python experiments/main.py takes the same arguments)", "",
           "modes (--config.mode):", *mode_lines, "",
           "methods (--config.method): " + ", ".join(
               f"{name} ({methods.get_method(name).title})" for name in methods.method_names())]
  if shipped:
    lines += ["", f"configs in {configs}:", "  " + ", ".join(shipped)]
  lines += ["", "flags:"]
  for name in ("config", "resume", "coordinator_address", "num_processes", "process_id",
               "multihost"):
    lines.append(f"  --{name}: {flags.FLAGS[name].help}")
  if config_path is None:
    lines += ["", f"with --config (e.g. jaxseg --config configs/scannet_svc.py --help) this "
              "also lists every config key and its value"]
  else:
    lines += ["", f"keys of {config_path} (override with --config.KEY=VALUE):",
              str(_load_config_file(config_path))]
  print("\n".join(lines))


def _parse_flags(argv: list[str]) -> list[str]:
  """Parses flags; an unknown config key or bad config file exits with a one-line reason."""
  path = _config_path(argv)
  if any(arg in _HELP_FLAGS for arg in argv[1:]):
    _print_help(path)
    sys.exit(0)
  if path is None:
    sys.exit(f"error: --config is required, {_EXAMPLE}")
  message = config_utils.unknown_override_message(argv, _load_config_file(path))
  if message:
    sys.exit(f"error: {message}")
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    sys.exit(f"error: {e}")


def _interrupted_message(config: ml_collections.ConfigDict) -> str:
  if config.mode == "train":
    return ("interrupted (Ctrl-C); checkpoints up to the last finished save are kept: run the "
            "same command with --resume to continue")
  return "interrupted (Ctrl-C); run the same command again (unfinished builds are cleaned up)"


@contextlib.contextmanager
def _one_line_errors(config: ml_collections.ConfigDict, logger: logging.Logger | None = None):
  """Ends bad input, environment errors and Ctrl-C inside the block with one line."""
  try:
    yield
  except InputError as e:
    _exit(f"error: {e}", 1, logger)
  except OSError as e:
    _exit(f"error: {os_error(None, e, reading=None)}", 1, logger)
  except RuntimeError as e:
    code = errno_in_message(e)  # e.g. ArrayRecord or tensorstore on a full disk
    if code is None:
      raise
    error = os_error(None, OSError(code, os.strerror(code)), reading=None)
    _exit(f"error: {error.problem} ({str(e).splitlines()[0][:300]}). Fix: {error.fix}", 1,
          logger)
  except KeyboardInterrupt:
    _exit(_interrupted_message(config), 130, logger)


def _exit(message: str, code: int, logger: logging.Logger | None) -> None:
  """Reports `message` (through `logger`, so also in log.txt, when given) and exits at once,
  without waiting for worker threads of an interrupted run."""
  if logger is None:
    print(message, file=sys.stderr)
  else:
    logger.error("%s", message)
  logging.shutdown()
  sys.stdout.flush()
  sys.stderr.flush()
  os._exit(code)  # pylint: disable=protected-access


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    sys.exit(f"error: unexpected argument {argv[1]!r}; set config values with "
             "--config.<key>=<value> (e.g. --config.mode=prepare)")
  interrupts.install()
  from jaxseg import distributed  # pylint: disable=g-import-not-at-top  (loads jax)
  with _one_line_errors(_CONFIG.value):
    distributed.initialize(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value,
                           auto=_MULTIHOST.value)
  from jaxseg import modes  # pylint: disable=g-import-not-at-top  (loads jax, tfds)
  from jaxseg.modes import checks  # pylint: disable=g-import-not-at-top
  config = _CONFIG.value
  errors = checks.validate(config)
  if errors:
    sys.exit("error: invalid config:\n  " + "\n  ".join(errors))
  workdir = os.path.abspath(config.workdir)
  resume = _RESUME.value
  # Nothing in the work directory is touched until these checks pass (on every process).
  with _one_line_errors(config):
    checks.preflight(config, workdir, resume)
    distributed.refuse_single_process_mode(config.mode)
    distributed.barrier("preflight")
    os.makedirs(workdir, exist_ok=True)
  logging_utils.setup_logging(logfile=os.path.join(workdir, distributed.log_name()))
  logger = logging_utils.get_logger("main")
  if distributed.joined():
    logger.info("multi-process run: %s", distributed.describe())
  with _one_line_errors(config, logger):
    if distributed.is_main():
      # `infer` may run in a trained run's work directory, whose config.json describes the
      # network it reads: its own config goes beside it.
      name = "infer_config.json" if config.mode == "infer" else "config.json"
      logger.info("resolved config written to %s",
                  config_utils.write_resolved_config(config, workdir, name))
    modes.run(config, workdir, resume=resume)


def run() -> None:
  """The command line's entry point (sys.argv)."""
  logging.getLogger("absl").setLevel(logging.WARNING)
  app.run(main, flags_parser=_parse_flags)
