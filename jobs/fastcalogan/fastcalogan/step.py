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
from .hparams import HParams

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
    _, out = tf.while_loop(lambda i, _: i < iterations, body, (start, metrics))
    return dict(out)


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
    hp : HParams
        Architecture and optimiser settings.
    fast_critic : str
        ``auto`` (the closed-form critic gradient wherever ``model.supports_fast_critic``),
        ``on`` (required: an error where it does not apply) or ``off`` (the reference,
        automatic differentiation of the loss as written).
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
        hp: HParams = hparams.PUBLISHED,
        fast_critic: str = "auto",
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
        if fast_critic not in hparams.FAST_CRITIC:
            valid = ", ".join(hparams.FAST_CRITIC)
            raise ValueError(f"fast_critic {fast_critic!r}; valid: {valid}")
        supported = model.supports_fast_critic(hp)
        if fast_critic == "on" and not supported:
            raise ValueError(
                f"fast_critic on: the closed form needs >= 2 critic layers, not {hp.critic}"
            )
        self.fast = supported and fast_critic != "off"
        self.hp = hp
        self.compute = tf.as_dtype(precision)
        self.n_voxels = int(datasets[0][0].shape[1])
        self.packed = packed
        self.batch_size = hp.batch_size
        self.keys = [int(k) for k in keys]
        self._x = [tf.constant(x, tf.float32) for x, _ in datasets]
        self._y = [tf.constant(y, tf.float32) for _, y in datasets]
        init = [model.initial_parameters(hp, self.n_voxels, k) for k in self.keys]
        if hp.output_init == "data":
            for values, (x, _) in zip(init, datasets):
                model.match_output_layer(values, hp, np.mean(x, axis=0))
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
        names = model.generator_names(self.hp) + model.generator_statistics(self.hp)
        return {n: self.params[n].numpy() for n in names}

    # ---- training ----------------------------------------------------------------------
    def train(self, iterations: int) -> dict[str, np.ndarray]:
        """Run ``iterations`` WGAN-GP iterations; return the metrics of the last one."""
        out = self._run(tf.constant(iterations, tf.int64))
        return {k: v.numpy() for k, v in out.items()}

    def _run_impl(self, iterations: tf.Tensor) -> dict[str, tf.Tensor]:
        return _loop(iterations, self._iteration, (len(self.keys),) if self.packed else ())

    def _draw(self) -> tuple[tf.Tensor, ...]:
        """Real batch, labels, critic noise, alpha and generator noise of this iteration."""
        n_crit = self.hp.critic_steps * self.batch_size
        latent, mean, std = self.hp.latent_dim, hparams.NOISE_MEAN, hparams.NOISE_STD
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
            draws[2].append(tf.random.stateless_normal([n_crit, latent], seeds[1], mean, std))
            draws[3].append(tf.random.stateless_uniform([n_crit, 1], seeds[2]))
            draws[4].append(
                tf.random.stateless_normal([self.batch_size, latent], seeds[3], mean, std)
            )
        if self.packed:
            return tuple(tf.stack(d) for d in draws)
        return tuple(d[0] for d in draws)

    def _adam(
        self, names: Sequence[str], grads: Mapping[str, tf.Tensor], t: tf.Tensor, lr: float
    ) -> None:
        t_f = tf.cast(t, tf.float32)
        b1p = tf.pow(tf.constant(self.hp.beta1, tf.float32), t_f)
        b2p = tf.pow(tf.constant(self.hp.beta2, tf.float32), t_f)
        for n in names:
            tf.raw_ops.ResourceApplyAdam(
                var=self.params[n].handle,
                m=self.slots[f"m/{n}"].handle,
                v=self.slots[f"v/{n}"].handle,
                beta1_power=b1p,
                beta2_power=b2p,
                lr=tf.constant(lr, tf.float32),
                beta1=tf.constant(self.hp.beta1, tf.float32),
                beta2=tf.constant(self.hp.beta2, tf.float32),
                epsilon=tf.constant(hparams.EPSILON, tf.float32),
                grad=grads[n],
            )

    def _iteration(self) -> dict[str, tf.Tensor]:
        """One WGAN-GP iteration: ``critic_steps`` critic updates, then one generator update."""
        hp, b = self.hp, self.batch_size
        real, label, noise, alpha, g_noise = self._draw()
        g_names, d_names = model.generator_names(hp), model.critic_names(hp)
        critic_gradients = model.critic_gradients if self.fast else model.reference_critic_gradients
        g_params = {n: self.params[n].read_value() for n in self.params if n.startswith("g_")}
        # The generator is fixed during the critic steps. Unless it normalises by batch
        # statistics its rows are independent, so one pass makes all the fake batches;
        # with them, each batch is normalised by its own, as a step of its own would be.
        if not hp.batch_dependent:
            fake = model.generate(g_params, noise, label, hp, self.compute)
        metrics: dict[str, tf.Tensor] = {}
        for s in range(hp.critic_steps):
            rows = slice(s * b, (s + 1) * b)
            if hp.batch_dependent:
                batch = model.generate(
                    g_params, noise[..., rows, :], label[..., rows, :], hp, self.compute, {}
                )
            else:
                batch = fake[..., rows, :]
            d_params = {n: self.params[n].read_value() for n in d_names}
            grads, metrics = critic_gradients(
                d_params,
                real[..., rows, :],
                batch,
                label[..., rows, :],
                alpha[..., rows, :],
                hp.gp_lambda,
                self.compute,
            )
            self.d_updates.assign_add(1)
            self._adam(d_names, grads, self.d_updates, hp.lr_critic)
        last_label = label[..., (hp.critic_steps - 1) * b :, :]
        d_params = {n: self.params[n].read_value() for n in d_names}
        g_vars = [self.params[n] for n in g_names]
        moments: dict[str, tf.Tensor] = {}
        with tf.GradientTape() as tape:
            fakes = model.generate(self.params, g_noise, last_label, hp, self.compute, moments)
            scores = model.critic(d_params, fakes, last_label, self.compute, split=self.fast)
            g_loss = -tf.reduce_mean(scores, axis=[-2, -1])
            g_total = tf.reduce_sum(g_loss)
        g_grads = tape.gradient(g_total, g_vars)
        self.g_updates.assign_add(1)
        self._adam(g_names, dict(zip(g_names, g_grads)), self.g_updates, hp.lr_generator)
        for name, value in moments.items():  # batch-normalisation moving averages
            self.params[name].assign(
                model.BN_MOMENTUM * self.params[name] + (1.0 - model.BN_MOMENTUM) * value
            )
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
        hp: HParams = hparams.PUBLISHED,
        fast_critic: str = "auto",
        jit: bool = False,
        precision: str = "float32",
    ) -> None:
        if len(keys) != len(datasets):
            raise ValueError("one key per dataset")
        self.hp = hp
        self.gans = [
            WganTrainer([data], [key], hp=hp, fast_critic=fast_critic, precision=precision)
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
    hp: HParams = hparams.PUBLISHED,
    fast_critic: str = "auto",
    jit: bool = False,
    precision: str = "float32",
) -> WganTrainer | InterleavedTrainer:
    """One GAN (one dataset), or a pack of GANs in the given layout (:data:`LAYOUTS`)."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout {layout!r}; valid: {', '.join(LAYOUTS)}")
    if len(datasets) > 1 and layout == "interleaved":
        return InterleavedTrainer(datasets, keys, hp, fast_critic, jit, precision)
    return WganTrainer(datasets, keys, len(datasets) > 1, hp, fast_critic, jit, precision)
