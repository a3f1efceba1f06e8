"""Command line: python -m mnist_core {train,sweep,reproduce,list,report,data,cluster}."""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from .backends import BACKENDS, RAY_ADDRESS_ENV, executor_for  # noqa: E402
from .catalog import (  # noqa: E402
    GRID_LAMBDAS,
    GRID_WIDTHS,
    REFERENCE_LAMBDAS,
    REFERENCE_WIDTHS,
    grid_configs,
    grid_table,
    lambda_configs,
    named_runs,
    parse_lambda,
    parse_lambdas,
    parse_width_pairs,
    reproduce_steps,
    run_row,
    runs_table,
    width_configs,
)
from .configs import MAX_EPOCHS, MAX_WIDTH, MODELS, PRECISIONS, ConfigError, RunConfig  # noqa: E402
from .data import DOWNLOADED, STANDARD_FINGERPRINT, MNISTError, load_mnist, mnist_available  # noqa: E402
from .download import SIZE_MB, URL_ENV_VAR, download_mnist  # noqa: E402
from .executors import ClusterError, LocalExecutor  # noqa: E402
from .store import StoreChain, StoreError  # noqa: E402


class Parser(argparse.ArgumentParser):
    """Bad arguments: one line on stderr and exit status 2, never a usage dump or traceback."""

    def error(self, message: str):
        sys.stderr.write(f"{self.prog}: error: {message} (see --help)\n")
        sys.exit(2)


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a finite number >= 0")
    return value


def _count(text: str, low: int = 1) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least {low}")
    return value


def _folder(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("the store path is empty; pass a folder, e.g. --store ~/mnist-runs")
    return text


def _seconds(text: str) -> float:
    value = _number(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a number of seconds > 0")
    return value


def _seed(text: str) -> int:
    return _count(text, low=0)


def _widths(text: str) -> tuple[int, ...]:
    widths = tuple(_count(p.strip()) if p.strip() else 0 for p in text.split(","))
    if not widths or any(w < 1 or w > MAX_WIDTH for w in widths):
        raise argparse.ArgumentTypeError(
            f"{text!r}: widths must be whole numbers from 1 to {MAX_WIDTH}, separated by commas")
    return widths


def _list_of(item):
    def parse(text: str):
        values = [item(p.strip()) for p in text.split(",") if p.strip()]
        if not values:
            raise argparse.ArgumentTypeError(f"{text!r} is an empty list")
        return values
    parse.__name__ = f"list of {item.__name__.strip('_')}"
    return parse


def _argument(parse):
    """An argparse type from one of catalog's parsers (the dashboard uses the same ones)."""
    def convert(text: str):
        try:
            return parse(text)
        except ConfigError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    convert.__name__ = parse.__name__.removeprefix("parse_")
    return convert


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--epochs", type=_count, help=f"epochs (1..{MAX_EPOCHS}; default: the model's)")
    parser.add_argument("--limit", type=_count, help="train on the first N training images only")
    parser.add_argument("--store", type=_folder, help="folder for new runs (default: the user store)")
    parser.add_argument("--data", help="MNIST .npz or IDX folder (default: $MNIST_PATH, Keras cache)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    _add_wait_timeout(parser)
    _add_backend(parser)


def _add_backend(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backend", choices=BACKENDS,
                        help=f"where to train: local, this process (the default), or ray "
                             f"(the default when ${RAY_ADDRESS_ENV} is set)")
    _add_ray_address(parser)


def _add_ray_address(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ray-address", metavar="ADDR",
                        help=f"Ray cluster to join: auto or host:port (default: ${RAY_ADDRESS_ENV}; "
                             "none: start Ray on this machine)")


def _add_wait_timeout(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--wait-timeout", type=_seconds, metavar="SECONDS",
                        help="give up (exit 2) after waiting this long for another process training "
                             "the same run, or for a CPU in the Ray cluster (default: wait, saying so "
                             "every 15 s)")
    parser.add_argument("--no-committed", action="store_true",
                        help="ignore cached_results/: reuse only runs in --store (to measure training)")


def build_parser() -> Parser:
    parser = Parser(prog="python -m mnist_core", description="Train, sweep and list MNIST runs.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    train = commands.add_parser("train", help="train one model (one Keras fit)")
    train.add_argument("--model", choices=MODELS, default="mlp")
    train.add_argument("--hidden", type=_widths, help="MLP hidden widths, e.g. 25,15 (default)")
    train.add_argument("--l2", type=_argument(parse_lambda),
                       help="L2 lambda on the MLP's hidden kernels (default 0)")
    train.add_argument("--seed", type=_seed, default=0)
    train.add_argument("--batch-size", type=_count)
    train.add_argument("--precision", choices=PRECISIONS,
                       help="improved CNN only: compute dtype while training (default float32)")
    _add_common(train)

    sweep = commands.add_parser("sweep", help="train a lambda or width sweep, reusing stored runs")
    kinds = sweep.add_subparsers(dest="kind", required=True, parser_class=Parser)
    lam = kinds.add_parser("lambda", help="L2 sweep on the 25-15 MLP")
    lam.add_argument("--values", type=_argument(parse_lambdas),
                     help="lambdas, e.g. 0,0.001,0.01 (default: the reference grid)")
    width = kinds.add_parser("width", help="width sweep over two hidden layers")
    width.add_argument("--widths", type=_argument(parse_width_pairs),
                       help="pairs, e.g. 10:5,25:10 (default: reference)")
    grid = kinds.add_parser("grid", help="every lambda at every width (the product), fused")
    grid.add_argument("--values", type=_argument(parse_lambdas),
                      help="lambdas, e.g. 0,0.001,0.01 (default: 0,0.001,0.003,0.01,0.03)")
    grid.add_argument("--widths", type=_argument(parse_width_pairs),
                      help="pairs, e.g. 25:15,100:40 (default: 25:15,100:40,250:100,600:240)")
    for sub in (lam, width, grid):
        sub.add_argument("--seeds", type=_list_of(_seed), default=[0], help="e.g. 0,1,2 (default 0)")
        sub.add_argument("--one-at-a-time", action="store_true", help="one Keras fit per point, not fused")
        _add_common(sub)

    reproduce = commands.add_parser("reproduce", help="train every reference experiment")
    reproduce.add_argument("--seeds", type=_list_of(_seed), default=[0, 1, 2])
    reproduce.add_argument("--improved-seeds", type=_list_of(_seed), default=[0])
    reproduce.add_argument("--one-at-a-time", action="store_true", help="one Keras fit per point, not fused")
    reproduce.add_argument("--store", type=_folder, help="folder for new runs (default: the user store)")
    reproduce.add_argument("--data", help="MNIST .npz or IDX folder")
    reproduce.add_argument("--quiet", action="store_true")
    _add_wait_timeout(reproduce)
    _add_backend(reproduce)

    report = commands.add_parser("report", help="results table and sweep images from stored runs")
    report.add_argument("--store", type=_folder, help="also read this store (default: the user store)")
    report.add_argument("--no-figures", action="store_true", help="print the table only")
    report.add_argument("--data", help="MNIST .npz or IDX folder (for the ensemble's test labels)")

    data = commands.add_parser("data", help="get MNIST")
    data_commands = data.add_subparsers(dest="action", required=True, parser_class=Parser)
    download = data_commands.add_parser("download", help=f"download MNIST ({SIZE_MB} MB) from Keras's "
                                        f"location (${URL_ENV_VAR} overrides), check it, keep it")
    download.add_argument("--to", type=_folder, help=f"file to write (default: {DOWNLOADED})")
    download.add_argument("--quiet", action="store_true", help="no progress bar")
    subset = data_commands.add_parser("neighbours", help="write the committed subset of training digits "
                                      "the Draw page searches for neighbours when MNIST is not at hand")
    subset.add_argument("--data", help="MNIST .npz or IDX folder (default: as training finds it)")
    data_commands.add_parser("embeddings", help="write where each named model places the committed subset "
                             "of training digits (the Draw page's look inside starts with them)")
    onnx = data_commands.add_parser("onnx", help="store each run's model as ONNX beside its model.keras, "
                                    "for reading without TensorFlow (default: the committed named runs)")
    onnx.add_argument("--store", type=_folder, help="every run of this store instead")
    check = data_commands.add_parser("not-a-digit", help="fit the Draw page's not-a-digit check for the "
                                     "improved CNN and write it to cached_results/ (a few minutes)")
    check.add_argument("--data", help="MNIST .npz or IDX folder (default: as training finds it)")

    suspects = commands.add_parser("suspects", help="test images whose label is likely wrong (cleanlab)")
    suspects.add_argument("--voters", type=_list_of(str),
                          help="named runs or run keys (12+ characters) that vote, e.g. "
                               "improved_cnn,reference_cnn (default: every stored CNN run)")
    suspects.add_argument("--top", type=_count, default=20, help="how many to show (default 20)")
    suspects.add_argument("--json", action="store_true", help="machine-readable output")
    suspects.add_argument("--store", type=_folder, help="also read this store; verdicts live in it "
                          "(default: the user store)")

    classify = commands.add_parser("classify", help="read PNG/JPEG images of digits as the Draw page does")
    classify.add_argument("images", nargs="+", metavar="IMAGE", help="PNG or JPEG files, any size, "
                          "light on dark or dark on light (decided by the border)")
    classify.add_argument("--models", type=_list_of(str), help="named runs or run keys (12+ characters) "
                          "that read them (default: the named runs)")
    classify.add_argument("--json", action="store_true", help="machine-readable output")
    classify.add_argument("--store", type=_folder, help="also read this store (default: the user store)")

    cluster = commands.add_parser("cluster", help="nodes and CPUs of the Ray cluster training would use")
    _add_ray_address(cluster)
    cluster.add_argument("--json", action="store_true", help="machine-readable output")

    listing = commands.add_parser("list", help="list stored runs")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.add_argument("--store", type=_folder, help="also list this store (default: the user store)")
    return parser


def stores_for(args) -> StoreChain:
    """Where a training command looks runs up: --store, and cached_results/ unless --no-committed."""
    return StoreChain.default(args.store, committed=not args.no_committed)


def cmd_train(args) -> None:
    overrides = dict(epochs=args.epochs, limit=args.limit, seed=args.seed, batch_size=args.batch_size,
                     precision=args.precision)
    if args.model == "mlp":
        overrides.update(hidden=args.hidden, l2=args.l2)
    elif args.hidden is not None or args.l2 is not None:
        raise ConfigError(f"--hidden and --l2 apply to --model mlp only, not {args.model}")
    config = RunConfig.for_model(args.model, **overrides)
    stores = stores_for(args)
    data = load_mnist(args.data)
    from .sweeps import ensure_runs

    executor = executor_for(args.backend, args.ray_address, args.wait_timeout)
    (run,) = ensure_runs([config], data, stores, fused=False, progress=not args.quiet,
                         wait_timeout=args.wait_timeout, executor=executor)
    _say_where(executor)
    print(f"{config.label}: train accuracy {run.train_accuracy:.4f}, test accuracy "
          f"{run.test_accuracy:.4f}, {run.metrics['wall_time_s']:.0f} s  [{run.key[:12]}] {run.path}")


def cmd_sweep(args) -> None:
    epochs = args.epochs or 60
    if args.kind == "lambda":
        configs = lambda_configs(args.values or REFERENCE_LAMBDAS, args.seeds, epochs, args.limit)
    elif args.kind == "grid":
        configs = grid_configs(args.values or GRID_LAMBDAS, args.widths or GRID_WIDTHS, args.seeds, epochs,
                               args.limit)
    else:
        configs = width_configs(args.widths or REFERENCE_WIDTHS, args.seeds, epochs, args.limit)
    stores = stores_for(args)
    data = load_mnist(args.data)
    from .sweeps import ensure_runs

    executor = executor_for(args.backend, args.ray_address, args.wait_timeout)
    frame = runs_table(ensure_runs(configs, data, stores, fused=not args.one_at_a_time,
                                   progress=not args.quiet, wait_timeout=args.wait_timeout,
                                   executor=executor))
    _say_where(executor)
    if args.kind == "grid":
        table = grid_table(frame)
        table.index = [f"{v:g}" for v in table.index]
        table.index.name, table.columns.name = "λ", None
        print("test error (mean over seeds); rows: lambda, columns: hidden widths")
        print(table.to_string(float_format=lambda v: f"{v:.2%}"))
        return
    shown = frame[["l2" if args.kind == "lambda" else "hidden", "seed", "train_error", "test_error",
                   "test_accuracy", "key"]].copy()
    shown["key"] = shown["key"].str[:12]
    print(shown.to_string(index=False))


def cmd_reproduce(args) -> None:
    stores = stores_for(args)
    data = load_mnist(args.data)
    executor = executor_for(args.backend, args.ray_address, args.wait_timeout)
    from .sweeps import ensure_runs

    pooled = not isinstance(executor, LocalExecutor)  # Ray: every CPU busy until the end
    for title, configs in reproduce_steps(args.seeds, args.improved_seeds, pooled):
        found = {key: stores.get(key) for key in (c.key(data.fingerprint) for c in configs)}
        done = sum(run is not None for run in found.values())
        print(f"== {title}: {len(configs)} runs, {done} already stored", flush=True)
        ensure_runs(configs, data, stores, fused=not args.one_at_a_time, progress=not args.quiet,
                    wait_timeout=args.wait_timeout, found=found, executor=executor)
    _say_where(executor)
    print("reproduce: every reference experiment is stored in", stores.writable.root)


def _say_where(executor) -> None:
    summary = executor.summary()
    if summary:
        print(summary, file=sys.stderr)


def cmd_suspects(args) -> None:
    from .suspects import Verdicts, default_voters, rank_suspects

    stores = StoreChain.default(args.store)
    named = named_runs(stores, STANDARD_FINGERPRINT)
    if args.voters:
        voters = {name: named.get(name) or _run_by_prefix(stores, name) for name in args.voters}
    else:
        voters = default_voters(stores.runs(), named)
    try:
        ranking = rank_suspects(voters)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    verdicts = Verdicts(stores.writable.root).load()
    top = ranking.head(args.top)
    rows = [{"rank": int(r.rank), "index": int(r.index), "given": int(r.given), "suggested": int(r.suggested),
             "label_quality": round(float(r.quality), 6), "flagged": bool(r.flagged), "agree": int(r.agree),
             "voters": len(voters), "confidence": round(float(r.confidence), 4), "votes": r.votes,
             "verdict": verdicts.get(int(r.index))} for r in top.itertuples(index=False)]
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"voters: {', '.join(f'{n} ({r.test_accuracy:.2%})' for n, r in voters.items())}; "
          f"{int(ranking['flagged'].sum())} images flagged by confident learning")
    for r in rows:
        print(f"{r['rank']:4d}  #{r['index']:<5d} given {r['given']}  suggested {r['suggested']}  "
              f"{r['agree']}/{r['voters']} models, {r['confidence']:.1%}"
              f"{'  flagged' if r['flagged'] else ''}{'  [' + r['verdict'] + ']' if r['verdict'] else ''}")


def cmd_classify(args) -> int:
    """One result per argument, in order; each file decoded, read and let go before the next,
    so memory stays flat however many files are given."""
    from .reading.reading import ImageFileError, embedding_model, image_of_file, read_picture, readers_for

    stores = StoreChain.default(args.store)
    named = named_runs(stores, STANDARD_FINGERPRINT)
    runs = ({name: named.get(name) or _run_by_prefix(stores, name, "model") for name in args.models}
            if args.models else named)
    if not runs:
        raise StoreError("no runs are stored to read with: run `python -m mnist_core reproduce`")
    temperatures, check, notes = readers_for(runs)
    for note in notes:
        sys.stderr.write(f"note: {note}\n")
    predict = reader_of(runs, stores, embedding_model(check))
    results, failed = [], 0
    for path in args.images:
        try:
            image = image_of_file(path)
        except ImageFileError as exc:
            sys.stderr.write(f"python -m mnist_core classify: error: {_printable(str(exc))}\n")
            failed += 1
            results.append({"file": path, "error": str(exc)})
            continue
        picture = read_picture(image, predict, check, temperatures)
        del image
        results.append(_picture_result(path, picture))
        if not args.json:
            print(_picture_line(results[-1], picture))
    if args.json:
        print(json.dumps(results, indent=2))
    return 2 if failed else 0


def _digit_result(reading) -> dict:
    return {"not_a_digit": bool(reading.not_a_digit), "too_small": bool(reading.too_small),
            "models": {name: {"digit": int(p.argmax()), "probability": round(float(p.max()), 4)}
                       for name, p in reading.probabilities.items()}}


def _picture_result(path: str, picture) -> dict:
    """One file's result: one digit (or none) as a drawing's; several add each digit (its box in
    the image as shown: left, top, width, height) and the number they make."""
    if len(picture.readings) <= 1:
        one = _digit_result(picture.readings[0]) if picture.readings else \
            {"not_a_digit": False, "too_small": False, "models": {}}
        return {"file": path, "polarity": picture.polarity, **one}
    digits = [{"box": list(found.box), **_digit_result(reading)}
              for found, reading in zip(picture.found, picture.readings)]
    return {"file": path, "polarity": picture.polarity,
            "not_a_digit": any(d["not_a_digit"] for d in digits),
            "too_small": any(d["too_small"] for d in digits), "models": {},
            "number": picture.number(), "digits": digits}


def _printable(text: str) -> str:
    """`text` as it is, or quoted when it holds a newline or another character that would
    break a line of output apart."""
    return text if text.isprintable() else json.dumps(text)


def reader_of(runs: dict, stores: StoreChain, embedding_of: str | None):
    """The runs' models read by ONNX Runtime. A run without its ONNX model (one trained before
    models were exported) gets it now, which alone loads TensorFlow, once per run."""
    from .reading import onnx_export, runtime

    missing = [name for name, run in runs.items() if onnx_export.onnx_file(stores, run) is None]
    if missing:
        sys.stderr.write(f"note: making the ONNX model of {', '.join(missing)} (once; loads TensorFlow)\n")
        for name in missing:
            onnx_export.export(stores, runs[name])
    return runtime.predictor(runs, stores, embedding_of)


def _picture_line(result: dict, picture) -> str:
    name = _printable(result["file"])
    if not picture.readings:
        return f"{name}: no digit found; {result['polarity']}"
    if len(picture.readings) == 1:
        return f"{name}: {_digit_words(result, picture.readings[0])}; {result['polarity']}"
    each = "; ".join(f"digit {i + 1}: {_digit_words(digit, reading)}"
                     for i, (digit, reading) in enumerate(zip(result["digits"], picture.readings)))
    return f"{name}: the number {result['number']} ({each}); {result['polarity']}"


def _digit_words(result: dict, reading) -> str:
    if reading.image28 is None:
        return ("too small to read (crop the image closer to the digit)" if reading.too_small
                else "blank: no ink found")
    readings = ", ".join(f"{name} {r['digit']} ({r['probability']:.1%})"
                         for name, r in result["models"].items())
    warning = "NOT A DIGIT to the models; " if reading.not_a_digit else ""
    return f"{warning}{readings}"


def _run_by_prefix(stores: StoreChain, prefix: str, what: str = "voter"):
    if len(prefix) < 12:
        raise ConfigError(f"{what} {prefix!r} is neither a named run nor a run key of 12+ characters")
    found = [run for run in stores.runs() if run.key.startswith(prefix)]
    if len(found) != 1:
        raise ConfigError(f"{what} {prefix!r} matches {len(found)} stored runs; `list` shows their keys")
    return found[0]


def cmd_cluster(args) -> None:
    from .ray_backend import RayExecutor

    executor = RayExecutor(args.ray_address or os.environ.get(RAY_ADDRESS_ENV) or None)
    info = executor.cluster()
    print(json.dumps(info) if args.json else executor.where())


def list_entries(stores: StoreChain) -> list[dict]:
    runs = stores.runs()
    names = {}
    for fingerprint in {r.data_fingerprint for r in runs}:
        names.update({run.key: name for name, run in named_runs(stores, fingerprint).items()})
    return [{"name": names.get(r.key), "label": r.config.label, "config": r.config.to_dict(), **run_row(r),
             "path": str(r.path), "model_path": str(r.model_path)} for r in runs]


def cmd_list(args) -> None:
    stores = StoreChain.default(args.store)
    for store in stores.all:
        store.check_readable()
    cleaned = stores.writable.clean_leftovers() if os.access(stores.writable.root, os.W_OK) else 0
    entries = list_entries(stores)
    note = (f"removed {cleaned} leftover folder(s) of interrupted writes, older than a day, "
            f"from {stores.writable.root}")
    if args.json:
        print(json.dumps(entries, indent=2))
        if cleaned:
            print(note, file=sys.stderr)
        return
    for e in entries:
        print(f"{e['key'][:12]}  {e['name'] or '-':15s} {e['label']:45s} "
              f"train {e['train_accuracy']:.4f}  test {e['test_accuracy']:.4f}")
    print(f"{len(entries)} runs in {', '.join(str(s.root) for s in stores.all)}")
    if cleaned:
        print(note)


def cmd_report(args) -> None:
    from .report import markdown, plot_sweeps, results

    stores = StoreChain.default(args.store)
    # The ensemble row needs the test labels; the rest of the report does not.
    test_labels = load_mnist(args.data).y_test if mnist_available(args.data) else None
    print(markdown(results(stores, STANDARD_FINGERPRINT, test_labels)))
    if not args.no_figures:
        for path in plot_sweeps(stores, STANDARD_FINGERPRINT):
            print(f"wrote {path}")


def cmd_data(args) -> None:
    if args.action == "neighbours":
        from .reading.neighbours import write_subset

        data = load_mnist(args.data)
        if data.fingerprint != STANDARD_FINGERPRINT:
            raise MNISTError(f"{data.source} is not the standard MNIST; the committed subset must be")
        print(f"wrote {write_subset(data)}")
        return
    if args.action == "embeddings":
        from .catalog import named_runs
        from .reading.inside import Inspector
        from .reading.neighbours import embeddings_file, read_subset, write_embeddings
        from .store import sha256_file

        subset = read_subset()
        for name, run in named_runs(StoreChain.default(), STANDARD_FINGERPRINT).items():
            embeddings = Inspector(run.load_model()).embed(subset.floats())
            path = write_embeddings(embeddings_file(run.key), embeddings, sha256_file(run.model_path))
            print(f"{name}: wrote {path}")
        return
    if args.action == "onnx":
        from .catalog import named_runs
        from .reading.onnx_export import export
        from .store import COMMITTED_STORE, RunStore

        if args.store:
            store = RunStore(args.store)
            runs = {run.key[:12]: run for run in store.runs()}
        else:  # the committed results are read-only to every other command
            store = RunStore(COMMITTED_STORE)
            runs = named_runs(StoreChain(store), STANDARD_FINGERPRINT)
        for name, run in runs.items():
            had = run.onnx_path is not None
            print(f"{name}: {'has' if had else 'wrote'} {export(StoreChain(store), run)}")
        return
    if args.action == "not-a-digit":
        from .catalog import named_runs
        from .reading import digit_check
        from .reading.neighbours import read_subset
        from .reading.photographs import fitting_photos
        from .store import sha256_file

        data = load_mnist(args.data)
        run = named_runs(StoreChain.default(), data.fingerprint).get(digit_check.MODEL_NAME)
        if run is None:
            raise StoreError(f"no {digit_check.MODEL_NAME} run is stored: run "
                             "`python -m mnist_core reproduce`")
        subset = read_subset()
        check = digit_check.fit(digit_check.embedder(run.load_model()), sha256_file(run.model_path),
                                data, subset, photographed=fitting_photos(data, subset))
        print(f"wrote {digit_check.write(check)}")
        return
    from tqdm import tqdm

    bars = []  # made at the first byte, so an early error is one line on its own

    def progress(done: int, total: int | None) -> None:
        if not bars:
            bars.append(tqdm(total=total, unit="B", unit_scale=True, desc="mnist.npz", leave=False))
        bars[0].update(done - bars[0].n)

    try:
        path = download_mnist(Path(args.to) if args.to else None, None if args.quiet else progress)
    finally:
        for bar in bars:
            bar.close()
    print(f"MNIST saved to {path}; training commands and the dashboard now find it")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handlers = {"train": cmd_train, "sweep": cmd_sweep, "reproduce": cmd_reproduce, "list": cmd_list,
                "report": cmd_report, "data": cmd_data, "cluster": cmd_cluster, "suspects": cmd_suspects,
                "classify": cmd_classify}
    return _run(lambda: handlers[args.command](args), f"python -m mnist_core {args.command}",
                INTERRUPTED.get(args.command, "nothing was left half-written"))


def run_benchmark(main, name: str) -> int:
    """A benchmark's entry point, failing as the command line does: bad input (no MNIST, a bad
    store, a cluster that does not answer) is one line on stderr and exit status 2."""
    return _run(main, name, "nothing was left half-written")


INTERRUPTED = {name: "finished runs are stored; run the same command to resume"
               for name in ("train", "sweep", "reproduce")}


def _run(action, name: str, interrupted: str) -> int:
    signal.signal(signal.SIGTERM, _interrupt)  # so clean-ups run (temporary files removed) as for Ctrl-C
    try:
        status = action()
    except (ConfigError, MNISTError, StoreError, ClusterError) as exc:
        sys.stderr.write(f"{name}: error: {exc}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write(f"interrupted: {interrupted}\n")
        return 130
    return status or 0


def _interrupt(signum, frame):
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
