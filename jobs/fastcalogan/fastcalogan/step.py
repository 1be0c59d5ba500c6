"""The compiled training loop: variables, Adam, random streams and one WGAN-GP iteration.

All randomness of iteration ``i`` of a GAN comes from stateless generators keyed by
``(gan_key, i)``: a resumed run, a run split into chunks of any size and the same GAN inside
a pack draw exactly the same numbers, so they compute the same weights.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import tensorflow as tf

from . import hparams, model

_STREAMS = 4  # random streams per iteration: data indices, critic noise, alpha, generator noise
_METRICS = ("d_loss", "gp", "wdist", "g_loss")
LAYOUTS = hparams.LAYOUTS  # how a pack of GANs is laid out (``pack_layout``)


def _compile(fn, jit: bool):  # type: ignore[no-untyped-def]
    """tf.function (XLA when asked; older TF spells that flag experimental_compile).

    Without AutoGraph: the loop is an explicit ``tf.while_loop`` and everything else is
    straight-line graph building, so the graph is the code as written. (In a long benchmark
    process AutoGraph once called another converted function in place of
    ``model.critic_gradients``; nothing here needs its conversion.)
    """
    if not jit:
        return tf.function(fn, autograph=False)
    try:
        return tf.function(fn, autograph=False, jit_compile=True)
    except TypeError:  # pragma: no cover - TF < 2.5
        return tf.function(fn, autograph=False, experimental_compile=True)


def _loop(
    iterations: tf.Tensor, iteration: Callable[[], dict[str, tf.Tensor]], shape: tuple[int, ...]
) -> dict[str, tf.Tensor]:
    """``iterations`` WGAN-GP iterations as a ``tf.while_loop``; the metrics of the last
    (``shape``: one per GAN of a pack, or scalars)."""
    metrics = {k: tf.zeros(shape) for k in _METRICS}

    def body(i: tf.Tensor, _: dict[str, tf.Tensor]) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
        return i + 1, iteration()

    start = tf.constant(0, tf.int64)
    _, metrics = tf.while_loop(lambda i, _: i < iterations, body, (start, metrics))
    return metrics


class WganTrainer:
    """K conditional WGAN-GPs (K = 1 without the pack axis) and their optimisers.

    Parameters
    ----------
    datasets : sequence of (numpy.ndarray, numpy.ndarray)
        Per GAN, normalised showers ``(n, N)`` and labels ``(n, 1)``, float32.
    keys : sequence of int
        Per GAN, the key of its random streams and initial weights.
    packed : bool
        Train the GANs as one batched model with a leading pack axis (any K >= 1).
    batch_size : int
        Showers per critic or generator batch.
    jit : bool
        Compile the loop with XLA.
    precision : str
        ``float32`` (published) or ``bfloat16``: precision of the matrix-product operands
        (weights, Adam and everything element-wise stay float32; see ``model._mm``).
    """

    def __init__(
        self,
        datasets: Sequence[tuple[np.ndarray, np.ndarray]],
        keys: Sequence[int],
        packed: bool = False,
        batch_size: int = hparams.BATCH_SIZE,
        jit: bool = False,
        precision: str = "float32",
    ) -> None:
        if not packed and len(datasets) != 1:
            raise ValueError("an unpacked trainer holds exactly one GAN")
        if len(keys) != len(datasets):
            raise ValueError("one key per dataset")
        if precision not in hparams.PRECISIONS:
            valid = ", ".join(hparams.PRECISIONS)
            raise ValueError(f"precision {precision!r}; valid: {valid}")
        self.compute = tf.as_dtype(precision)
        self.n_voxels = int(datasets[0][0].shape[1])
        self.packed = packed
        self.batch_size = batch_size
        self.keys = [int(k) for k in keys]
        self._x = [tf.constant(x, tf.float32) for x, _ in datasets]
        self._y = [tf.constant(y, tf.float32) for _, y in datasets]
        init = [model.initial_parameters(self.n_voxels, k) for k in self.keys]
        values = model.stack_parameters(init) if packed else init[0]
        self.params = {n: tf.Variable(v, name=n) for n, v in values.items()}
        self.slots = {
            f"{slot}/{n}": tf.Variable(tf.zeros_like(v), name=f"{slot}_{n}")
            for n, v in values.items()
            for slot in ("m", "v")
        }
        self.iteration = tf.Variable(0, dtype=tf.int64, name="iteration")
        self.d_updates = tf.Variable(0, dtype=tf.int64, name="d_updates")
        self.g_updates = tf.Variable(0, dtype=tf.int64, name="g_updates")
        self._run = _compile(self._run_impl, jit)

    # ---- state -------------------------------------------------------------------------
    def state(self) -> dict[str, np.ndarray]:
        """Every variable as numpy (parameters, Adam slots, counters)."""
        out = {n: v.numpy() for n, v in self.params.items()}
        out.update({n: v.numpy() for n, v in self.slots.items()})
        for v in (self.iteration, self.d_updates, self.g_updates):
            out[v.name.split(":")[0]] = np.asarray(v.numpy())
        return out

    def load_state(self, state: Mapping[str, np.ndarray]) -> None:
        """Restore what :meth:`state` returned; shapes must match."""
        for name, var in {**self.params, **self.slots}.items():
            var.assign(state[name])
        self.iteration.assign(int(state["iteration"]))
        self.d_updates.assign(int(state["d_updates"]))
        self.g_updates.assign(int(state["g_updates"]))

    def generator_parameters(self) -> dict[str, np.ndarray]:
        """The generator weights and biases as numpy."""
        return {n: self.params[n].numpy() for n in model.generator_names()}

    # ---- training ----------------------------------------------------------------------
    def train(self, iterations: int) -> dict[str, np.ndarray]:
        """Run ``iterations`` WGAN-GP iterations; return the metrics of the last one."""
        out = self._run(tf.constant(iterations, tf.int64))
        return {k: v.numpy() for k, v in out.items()}

    def _run_impl(self, iterations: tf.Tensor) -> dict[str, tf.Tensor]:
        return _loop(iterations, self._iteration, (len(self.keys),) if self.packed else ())

    def _draw(self) -> tuple[tf.Tensor, ...]:
        """Real batch, labels, critic noise, alpha and generator noise of this iteration."""
        n_crit = hparams.CRITIC_STEPS * self.batch_size
        base = self.iteration * _STREAMS
        draws: list[list[tf.Tensor]] = [[], [], [], [], []]
        for k, key in enumerate(self.keys):
            seeds = [tf.stack([tf.constant(key, tf.int64), base + j]) for j in range(_STREAMS)]
            n = tf.shape(self._x[k], out_type=tf.int64)[0]
            idx = tf.random.stateless_uniform(
                [n_crit], seed=seeds[0], minval=0, maxval=n, dtype=tf.int64
            )
            draws[0].append(tf.gather(self._x[k], idx))
            draws[1].append(tf.gather(self._y[k], idx))
            draws[2].append(
                tf.random.stateless_normal(
                    [n_crit, hparams.LATENT_DIM], seeds[1], hparams.NOISE_MEAN, hparams.NOISE_STD
                )
            )
            draws[3].append(tf.random.stateless_uniform([n_crit, 1], seeds[2]))
            draws[4].append(
                tf.random.stateless_normal(
                    [self.batch_size, hparams.LATENT_DIM],
                    seeds[3],
                    hparams.NOISE_MEAN,
                    hparams.NOISE_STD,
                )
            )
        if self.packed:
            return tuple(tf.stack(d) for d in draws)
        return tuple(d[0] for d in draws)

    def _adam(self, names: Sequence[str], grads: Mapping[str, tf.Tensor], t: tf.Tensor) -> None:
        t_f = tf.cast(t, tf.float32)
        b1p = tf.pow(tf.constant(hparams.BETA1, tf.float32), t_f)
        b2p = tf.pow(tf.constant(hparams.BETA2, tf.float32), t_f)
        for n in names:
            tf.raw_ops.ResourceApplyAdam(
                var=self.params[n].handle,
                m=self.slots[f"m/{n}"].handle,
                v=self.slots[f"v/{n}"].handle,
                beta1_power=b1p,
                beta2_power=b2p,
                lr=tf.constant(hparams.LEARNING_RATE, tf.float32),
                beta1=tf.constant(hparams.BETA1, tf.float32),
                beta2=tf.constant(hparams.BETA2, tf.float32),
                epsilon=tf.constant(hparams.EPSILON, tf.float32),
                grad=grads[n],
            )

    def _iteration(self) -> dict[str, tf.Tensor]:
        b = self.batch_size
        real, label, noise, alpha, g_noise = self._draw()
        g_names, d_names = model.generator_names(), model.critic_names()
        g_params = {n: self.params[n].read_value() for n in g_names}
        # The generator is fixed during the critic steps: one pass makes all 5 fake batches.
        fake = model.generate(g_params, noise, label, self.compute)
        metrics: dict[str, tf.Tensor] = {}
        for s in range(hparams.CRITIC_STEPS):
            rows = slice(s * b, (s + 1) * b)
            d_params = {n: self.params[n].read_value() for n in d_names}
            grads, metrics = model.critic_gradients(
                d_params,
                real[..., rows, :],
                fake[..., rows, :],
                label[..., rows, :],
                alpha[..., rows, :],
                compute=self.compute,
            )
            self.d_updates.assign_add(1)
            self._adam(d_names, grads, self.d_updates)
        last_label = label[..., (hparams.CRITIC_STEPS - 1) * b :, :]
        d_params = {n: self.params[n].read_value() for n in d_names}
        g_vars = [self.params[n] for n in g_names]
        with tf.GradientTape() as tape:
            fakes = model.generate(self.params, g_noise, last_label, self.compute)
            scores = model.critic(d_params, fakes, last_label, self.compute, split=True)
            g_loss = -tf.reduce_mean(scores, axis=[-2, -1])
            g_total = tf.reduce_sum(g_loss)
        g_grads = tape.gradient(g_total, g_vars)
        self.g_updates.assign_add(1)
        self._adam(g_names, dict(zip(g_names, g_grads)), self.g_updates)
        self.iteration.assign_add(1)
        return {
            "d_loss": metrics["loss"],
            "gp": metrics["gp"],
            "wdist": metrics["wdist"],
            "g_loss": g_loss,
        }


class InterleavedTrainer:
    """K GANs, each its own single-GAN graph, side by side in one compiled loop.

    The CPU layout of a pack. A batched model (``WganTrainer(packed=True)``) fills a device
    that one small GAN leaves idle, but on CPU cores every batched op only streams K times
    the data through the caches: a pack of 10 ran 13% (photons) and 21% (pions) slower
    than the same 10 GANs one after another. Side by side, each GAN runs exactly the graph
    it runs alone (so it computes the same bits, pions included), and the runtime fills the
    gaps of one GAN's iteration with another's ops: no loss against the 10 runs.

    The state has the batched layout (a leading pack axis on every parameter and slot,
    shared counters), so a checkpoint resumes in either layout.
    """

    packed = True

    def __init__(
        self,
        datasets: Sequence[tuple[np.ndarray, np.ndarray]],
        keys: Sequence[int],
        batch_size: int = hparams.BATCH_SIZE,
        jit: bool = False,
        precision: str = "float32",
    ) -> None:
        if len(keys) != len(datasets):
            raise ValueError("one key per dataset")
        self.gans = [
            WganTrainer([data], [key], batch_size=batch_size, precision=precision)
            for data, key in zip(datasets, keys)
        ]
        self.keys = [int(k) for k in keys]
        self.n_voxels = self.gans[0].n_voxels
        self.iteration = self.gans[0].iteration  # the GANs step together
        self._run = _compile(self._run_impl, jit)

    def state(self) -> dict[str, np.ndarray]:
        """Every variable as numpy, stacked along the pack axis (counters once)."""
        states = [gan.state() for gan in self.gans]
        return {
            name: np.stack([s[name] for s in states]) if value.ndim else value
            for name, value in states[0].items()
        }

    def load_state(self, state: Mapping[str, np.ndarray]) -> None:
        """Restore what :meth:`state` (or a batched trainer's ``state``) returned."""
        for k, gan in enumerate(self.gans):
            gan.load_state({n: v[k] if np.ndim(v) else v for n, v in state.items()})

    def generator_parameters(self) -> dict[str, np.ndarray]:
        """The generator weights and biases, stacked along the pack axis."""
        per = [gan.generator_parameters() for gan in self.gans]
        return {name: np.stack([p[name] for p in per]) for name in per[0]}

    def train(self, iterations: int) -> dict[str, np.ndarray]:
        """Run ``iterations`` iterations of every GAN; metrics of the last, one per GAN."""
        out = self._run(tf.constant(iterations, tf.int64))
        return {k: v.numpy() for k, v in out.items()}

    def _run_impl(self, iterations: tf.Tensor) -> dict[str, tf.Tensor]:
        return _loop(iterations, self._iteration, (len(self.gans),))

    def _iteration(self) -> dict[str, tf.Tensor]:
        per = [gan._iteration() for gan in self.gans]
        return {k: tf.stack([m[k] for m in per]) for k in _METRICS}


def build_trainer(
    datasets: Sequence[tuple[np.ndarray, np.ndarray]],
    keys: Sequence[int],
    layout: str = "batched",
    batch_size: int = hparams.BATCH_SIZE,
    jit: bool = False,
    precision: str = "float32",
) -> WganTrainer | InterleavedTrainer:
    """One GAN (one dataset), or a pack of GANs in the given layout (:data:`LAYOUTS`)."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout {layout!r}; valid: {', '.join(LAYOUTS)}")
    if len(datasets) > 1 and layout == "interleaved":
        return InterleavedTrainer(datasets, keys, batch_size, jit, precision)
    return WganTrainer(datasets, keys, len(datasets) > 1, batch_size, jit, precision)
