"""A training task from start to end: data, resume, train, checkpoint, signals, selection.

Output layout under ``out_dir``::

    data/                                synthetic CSV tree (dataset: synthetic)
    checkpoints/ckpt-*.npz|json          full training state (newest ``keep_checkpoints``)
    gan-{particle}-eta{NN}/generators/   generator snapshot + chi2/ndf at every checkpoint
    gan-{particle}-eta{NN}/export/       best generator: saved_model/, generator.npz|json
    gan-{particle}-eta{NN}/plots/        total_energy.png, chi2_vs_iteration.png
    gan-{particle}-eta{NN}/selection.json
"""

from __future__ import annotations

import os
import signal
import sys
import time
from types import FrameType
from typing import Any

import numpy as np

from . import checkpoint, synthetic
from .errors import Checkpointed, ConfigError, NoGpuError
from .evaluate import evaluate
from .layout import csv_path
from .readers import ShowerSet, read_calochallenge, read_csv_slice
from .spec import TrainConfig

CHUNK = 10  # iterations per compiled call: how quickly a signal is noticed


def log(message: str) -> None:
    """One progress line on stdout, flushed (batch logs are files)."""
    print(message, flush=True)


def check_gpu(gpus: int) -> None:
    """Fail fast when GPUs were requested but none is visible (``--nv`` only warns)."""
    if gpus <= 0:
        return
    import tensorflow as tf

    found = tf.config.list_physical_devices("GPU")
    if not found:
        raise NoGpuError(
            f"the task requested {gpus} GPU(s) but TensorFlow sees none "
            f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', '<unset>')}); "
            "refusing to train on the CPU"
        )
    log(f"GPUs: {', '.join(d.name for d in found)}")


def split_data(cfg: TrainConfig, data: list[ShowerSet]) -> list[tuple[ShowerSet, ShowerSet]]:
    """Per slice, (training, held-out) showers (``holdout``; the same split every time)."""
    return [d.split(cfg.holdout, cfg.gan_key(s)) for s, d in zip(cfg.eta_slices, data)]


def load_data(cfg: TrainConfig) -> list[ShowerSet]:
    """The showers of every slice of the task, making the synthetic dataset if needed."""
    part = cfg.particle
    if cfg.dataset == "calochallenge":
        assert cfg.data is not None
        return [read_calochallenge(cfg.data, part, cfg.momenta)]
    if cfg.dataset == "csv":
        assert cfg.data is not None
        return [read_csv_slice(cfg.data, part, s, cfg.momenta) for s in cfg.eta_slices]
    root = cfg.data_dir
    todo = [
        s
        for s in cfg.eta_slices
        if not all(csv_path(root, part, p, s).is_file() for p in cfg.momenta)
    ]
    if todo:
        t0 = time.perf_counter()
        synthetic.write_dataset(root, part, todo, cfg.events_per_energy, cfg.seed, cfg.momenta)
        log(
            f"synthetic dataset (NOT Geant4): {part.name} slices {todo}, "
            f"{cfg.events_per_energy} showers x {len(cfg.momenta)} energies in {root} "
            f"({time.perf_counter() - t0:.1f} s)"
        )
    return [read_csv_slice(root, part, s, cfg.momenta) for s in cfg.eta_slices]


def _bfloat16_units() -> bool:
    """True when this CPU has bfloat16 matrix instructions (AVX512-BF16 or AMX)."""
    try:
        with open("/proc/cpuinfo") as handle:
            flags = next((line for line in handle if line.startswith("flags")), "").split()
    except OSError:  # pragma: no cover - not Linux
        return True  # unknown: do not warn
    return "avx512_bf16" in flags or "amx_bf16" in flags


def configure_threads(jit: bool = False) -> None:
    """Use the cores this process may run on (batch systems restrict the affinity).

    The step keeps two lanes of single-core matrix products going (``model._Lanes``), one
    op per core. Element-wise ops that split themselves over more threads than the lanes
    leave free only wait for a busy core: on 2 cores, 1 thread per op made both our step
    and the Keras baseline 7-14% faster (packed training unchanged). So each op gets half
    of the cores and the runtime runs as many ops at once as there are cores. XLA runs one
    compiled op at a time and parallelises inside it: with ``jit`` each op gets all cores.
    """
    import tensorflow as tf

    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    try:
        tf.config.threading.set_intra_op_parallelism_threads(cores if jit else max(1, cores // 2))
        tf.config.threading.set_inter_op_parallelism_threads(cores)
    except RuntimeError:  # TensorFlow already running in this process (tests): keep it
        pass


class _StopFlag:
    """Remembers the first SIGUSR2/SIGTERM; training stops at the next chunk boundary."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._previous: dict[int, Any] = {}

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        if self.signal is None:
            self.signal = signum
            log(f"received {signal.Signals(signum).name}: checkpointing at the next step")

    def install(self) -> None:
        for sig in (signal.SIGUSR2, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handler)

    def restore(self) -> None:
        for sig, old in self._previous.items():
            signal.signal(sig, old)


def _save(
    cfg: TrainConfig, trainer: Any, data: list[ShowerSet], history: list[dict[str, Any]]
) -> None:
    """Generator snapshots with their chi2/ndf first, then the full state (commit last).

    ``data``: per slice the held-out showers (chi2/ndf never looks at training showers).
    """
    it = int(trainer.iteration.numpy())
    gen = trainer.generator_parameters()
    scores = []
    for k, (s, shower_set) in enumerate(zip(cfg.eta_slices, data)):
        params = {n: v[k] for n, v in gen.items()} if cfg.packed else gen
        ev = evaluate(params, cfg.hp, shower_set, cfg.eval_events)
        scores.append(ev.chi2_ndf)
        checkpoint.save(
            cfg.gan_dir(s) / "generators",
            it,
            params,
            {
                "chi2": ev.chi2,
                "ndf": ev.ndf,
                "chi2_ndf": ev.chi2_ndf,
                "eta_slice": s,
                "particle": cfg.particle.name,
                "hparams": cfg.hp.as_json(),
            },
            stem="gen",
        )
    meta = {
        "particle": cfg.particle.name,
        "eta_slices": list(cfg.eta_slices),
        "hparams": cfg.hp.as_json(),
        "seed": cfg.seed,
        "precision": cfg.precision,
        "history": history,
    }
    checkpoint.save(cfg.checkpoint_dir, it, trainer.state(), meta, keep=cfg.keep_checkpoints)
    log(f"checkpoint {it}: chi2/ndf " + " ".join(f"{x:.3g}" for x in scores))


def _resume(cfg: TrainConfig, trainer: Any) -> list[dict[str, Any]]:
    removed = checkpoint.remove_stale_temporaries(cfg.checkpoint_dir)
    for s in cfg.eta_slices:
        removed += checkpoint.remove_stale_temporaries(cfg.gan_dir(s) / "generators")
    if removed:
        log(f"removed {len(removed)} stale temporary file(s) of an interrupted write")
    ck = checkpoint.latest_valid(cfg.checkpoint_dir)
    if ck is None:
        return []
    for key, want in (
        ("particle", cfg.particle.name),
        ("eta_slices", list(cfg.eta_slices)),
        ("seed", cfg.seed),
    ):
        if ck.meta.get(key) != want:
            raise ConfigError(
                f"{cfg.checkpoint_dir}: checkpoint {ck.iteration} has {key}={ck.meta.get(key)!r}"
                f", this task has {want!r}; use a new out_dir"
            )
    differ = cfg.hp.mismatches(ck.meta.get("hparams") or {})
    if differ:
        raise ConfigError(
            f"{cfg.checkpoint_dir}: checkpoint {ck.iteration} was trained with other "
            f"hyperparameters ({'; '.join(differ)}); use a new out_dir or the same values"
        )
    trainer.load_state(ck.arrays)
    log(f"resumed from checkpoint {ck.iteration}")
    before = ck.meta.get("precision", "float32")
    if before != cfg.precision:  # allowed (weights are float32 either way), but say so
        log(f"precision changes from {before} to {cfg.precision} at iteration {ck.iteration}")
    return list(ck.meta.get("history", []))


def train(cfg: TrainConfig) -> int:
    """Train (or resume) up to ``cfg.iterations``; return the final iteration.

    Raises
    ------
    Checkpointed
        After SIGUSR2/SIGTERM, once the checkpoint is written (exit code 85).
    """
    stop = _StopFlag()
    stop.install()  # from the start: a signal during set-up must still end in "requeue"
    try:
        check_gpu(cfg.gpus)
        parts = split_data(cfg, load_data(cfg))
        data = [held for _, held in parts]
        configure_threads(cfg.jit)
        if cfg.precision == "bfloat16" and not cfg.gpus and not _bfloat16_units():
            log(
                "warning: this CPU has no bfloat16 matrix units (AVX512-BF16, AMX): bfloat16 "
                "products are emulated and may be slower than precision: float32"
            )
        from .step import build_trainer

        trainer = build_trainer(
            [train_set.training_arrays(cfg.hp) for train_set, _ in parts],
            [cfg.gan_key(s) for s in cfg.eta_slices],
            layout=cfg.pack_layout,
            hp=cfg.hp,
            fast_critic=cfg.fast_critic,
            jit=cfg.jit,
            precision=cfg.precision,
        )
        history = _resume(cfg, trainer)
        it = int(trainer.iteration.numpy())
        if it == 0:
            _save(cfg, trainer, data, history)  # iteration 0: the starting point of chi2/ndf
        last_t, last_it = time.perf_counter(), it
        layout = f", {cfg.pack_layout} pack" if cfg.packed else ""
        log(
            f"training {cfg.particle.name} slices {list(cfg.eta_slices)} "
            f"({trainer.n_voxels} voxels{layout}) from iteration {it} to {cfg.iterations}"
        )
        while it < cfg.iterations and stop.signal is None:
            n = min(
                CHUNK,
                cfg.iterations - it,
                cfg.log_every - it % cfg.log_every,
                cfg.checkpoint_every - it % cfg.checkpoint_every,
            )
            metrics = trainer.train(n)
            it += n
            if it % cfg.log_every == 0 or it == cfg.iterations:
                now = time.perf_counter()
                rate = (it - last_it) / max(now - last_t, 1e-9)
                last_t, last_it = now, it
                mean = {k: float(np.mean(v)) for k, v in metrics.items()}
                history.append({"iteration": it, "it_per_s": rate, **mean})
                log(
                    f"it {it}/{cfg.iterations}  {rate:.1f} it/s  d_loss {mean['d_loss']:.4g}  "
                    f"g_loss {mean['g_loss']:.4g}  gp {mean['gp']:.3g}  "
                    f"wdist {mean['wdist']:.4g}"
                )
            if it % cfg.checkpoint_every == 0 or it == cfg.iterations:
                _save(cfg, trainer, data, history)
        if stop.signal is not None:
            if not checkpoint.list_records(cfg.checkpoint_dir)[-1].name.endswith(f"{it:09d}.json"):
                _save(cfg, trainer, data, history)
            raise Checkpointed(f"stopped by signal {stop.signal} at iteration {it}")
    finally:
        stop.restore()
    return it


def run(cfg: TrainConfig) -> int:
    """The job's main task: train, then select, export and plot (unless ``select`` is off)."""
    it = train(cfg)
    if cfg.select:
        from .select import select_and_export

        parts = split_data(cfg, load_data(cfg))
        for s, (train_set, held) in zip(cfg.eta_slices, parts):
            select_and_export(cfg, s, held, train_set)
        if cfg.validate:
            from .validate import validate_task

            try:
                validate_task(cfg)
            except ImportError as exc:  # an image without scipy/scikit-learn: say so
                log(f"warning: validation skipped: it needs {exc.name}")
    log(f"done: {it} iterations")
    sys.stdout.flush()
    return 0
