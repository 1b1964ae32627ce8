"""MASCOT core (C++): low-precision matrix-factorization training"""

from collections.abc import Callable, Sequence
import os
from typing import Annotated

import numpy
from numpy.typing import NDArray


class CompetingParams:
    """
    Settings of the competing methods (mpt, muppet, afp) and of als; validate() names bad fields.
    """

    def __init__(self) -> None: ...

    def validate(self) -> None: ...

    @property
    def loss_scale(self) -> float:
        """
        loss scale S (the initial S when dynamic): e * S in the FP16 backward pass, gradients / S in FP32
        """

    @loss_scale.setter
    def loss_scale(self, arg: float, /) -> None: ...

    @property
    def dynamic_loss_scale(self) -> bool:
        """dynamic scaling: an overflowing update is skipped and S halves"""

    @dynamic_loss_scale.setter
    def dynamic_loss_scale(self, arg: bool, /) -> None: ...

    @property
    def loss_scale_window(self) -> int:
        """dynamic scaling: clean updates before S doubles"""

    @loss_scale_window.setter
    def loss_scale_window(self, arg: int, /) -> None: ...

    @property
    def muppet_word_lengths(self) -> list[int]:
        """fixed-point word lengths before FP32, strictly increasing, 2..24 bits"""

    @muppet_word_lengths.setter
    def muppet_word_lengths(self, arg: Sequence[int], /) -> None: ...

    @property
    def muppet_resolution(self) -> int:
        """epochs per gradient-diversity window"""

    @muppet_resolution.setter
    def muppet_resolution(self, arg: int, /) -> None: ...

    @property
    def muppet_patience(self) -> int:
        """threshold violations before the next word length"""

    @muppet_patience.setter
    def muppet_patience(self, arg: int, /) -> None: ...

    @property
    def muppet_threshold_alpha(self) -> float:
        """threshold T(e) = alpha + beta * exp(-decay * e): alpha"""

    @muppet_threshold_alpha.setter
    def muppet_threshold_alpha(self, arg: float, /) -> None: ...

    @property
    def muppet_threshold_beta(self) -> float:
        """threshold T(e): beta"""

    @muppet_threshold_beta.setter
    def muppet_threshold_beta(self, arg: float, /) -> None: ...

    @property
    def muppet_threshold_decay(self) -> float:
        """threshold T(e): decay"""

    @muppet_threshold_decay.setter
    def muppet_threshold_decay(self, arg: float, /) -> None: ...

    @property
    def muppet_batch(self) -> int:
        """ratings of an epoch's last mini-batch whose gradient is recorded"""

    @muppet_batch.setter
    def muppet_batch(self, arg: int, /) -> None: ...

    @property
    def afp_low_bits(self) -> int:
        """bit width every tensor starts with"""

    @afp_low_bits.setter
    def afp_low_bits(self, arg: int, /) -> None: ...

    @property
    def afp_high_bits(self) -> int:
        """
        bit width when the quantization error exceeds the threshold (> afp_low_bits, <= 24)
        """

    @afp_high_bits.setter
    def afp_high_bits(self, arg: int, /) -> None: ...

    @property
    def afp_error_threshold(self) -> float:
        """
        threshold T on the quantization error log2(|sum|x| - sum|xq|| / sum|x| + 1)
        """

    @afp_error_threshold.setter
    def afp_error_threshold(self, arg: float, /) -> None: ...

    @property
    def afp_alpha(self) -> float:
        """
        update interval: weight of the newest point position in its moving average m
        """

    @afp_alpha.setter
    def afp_alpha(self, arg: float, /) -> None: ...

    @property
    def afp_beta(self) -> float:
        """
        update interval I = beta / max(delta * diff^2, |m_t - m_t-1|) - gamma: beta
        """

    @afp_beta.setter
    def afp_beta(self, arg: float, /) -> None: ...

    @property
    def afp_gamma(self) -> float:
        """update interval: gamma (in iterations)"""

    @afp_gamma.setter
    def afp_gamma(self, arg: float, /) -> None: ...

    @property
    def afp_delta(self) -> float:
        """update interval: delta (weight of the squared quantization error)"""

    @afp_delta.setter
    def afp_delta(self, arg: float, /) -> None: ...

    @property
    def implicit(self) -> bool:
        """
        implicit feedback: a rating r is a strength >= 0, confidence c = 1 + alpha r, preference 1 (0 if unrated)
        """

    @implicit.setter
    def implicit(self, arg: bool, /) -> None: ...

    @property
    def alpha(self) -> float:
        """implicit confidence c = 1 + alpha r"""

    @alpha.setter
    def alpha(self, arg: float, /) -> None: ...

    @property
    def als_solver(self) -> str:
        """
        each row's normal equations: cg_steps conjugate-gradient steps from its last value, or exact
        """

    @als_solver.setter
    def als_solver(self, arg: str, /) -> None: ...

    @property
    def cg_steps(self) -> int:
        """CG steps per row solve"""

    @cg_steps.setter
    def cg_steps(self, arg: int, /) -> None: ...

    @property
    def als_regularization(self) -> str:
        """
        reg_u = lambda n_u (weighted) or lambda (plain); auto: weighted iff explicit
        """

    @als_regularization.setter
    def als_regularization(self, arg: str, /) -> None: ...

    @property
    def als_factors(self) -> str:
        """storage of P and Q (fp16: rounded to nearest, computed in fp32)"""

    @als_factors.setter
    def als_factors(self, arg: str, /) -> None: ...

    @property
    def als_hermitian(self) -> str:
        """storage of CG's matrices A_u (fp16: the cuMF_ALS paper's Solution 4)"""

    @als_hermitian.setter
    def als_hermitian(self, arg: str, /) -> None: ...

    @property
    def cg_form(self) -> str:
        """
        CG's products A p: with A_u built, or matrix-free (CPU; auto: whichever costs less)
        """

    @cg_form.setter
    def cg_form(self, arg: str, /) -> None: ...

class TrainConfig:
    """Training parameters (mascot/params.h); validate() names bad fields."""

    def __init__(self) -> None: ...

    @property
    def competing(self) -> CompetingParams:
        """mpt / muppet / afp settings (CompetingParams)"""

    @competing.setter
    def competing(self, arg: CompetingParams, /) -> None: ...

    def validate(self) -> None: ...

    def lr_at(self, epoch: int) -> float: ...

    @property
    def method(self) -> str:
        """precision method (README: Methods)"""

    @method.setter
    def method(self, arg: str, /) -> None: ...

    @property
    def k(self) -> int:
        """latent dimension"""

    @k.setter
    def k(self, arg: int, /) -> None: ...

    @property
    def epochs(self) -> int:
        """passes over the training set"""

    @epochs.setter
    def epochs(self, arg: int, /) -> None: ...

    @property
    def lr(self) -> float:
        """initial learning rate eta0"""

    @lr.setter
    def lr(self, arg: float, /) -> None: ...

    @property
    def decay(self) -> float:
        """schedule eta_e = eta0 / (1 + decay * e^1.5), e 0-based"""

    @decay.setter
    def decay(self, arg: float, /) -> None: ...

    @property
    def schedule(self) -> str:
        """
        learning rate: decay (the paper's, above) or adagrad (LIBMF's per-row eta0 / sqrt(G), G: mean sq. grads)
        """

    @schedule.setter
    def schedule(self, arg: str, /) -> None: ...

    @property
    def lambda_p(self) -> float:
        """L2 regularisation of user vectors"""

    @lambda_p.setter
    def lambda_p(self, arg: float, /) -> None: ...

    @property
    def lambda_q(self) -> float:
        """L2 regularisation of item vectors"""

    @lambda_q.setter
    def lambda_q(self, arg: float, /) -> None: ...

    @property
    def init_std(self) -> float:
        """P, Q ~ N(0, init_std^2)"""

    @init_std.setter
    def init_std(self, arg: float, /) -> None: ...

    @property
    def rounding(self) -> str:
        """how FP16 stores of FP32 results round"""

    @rounding.setter
    def rounding(self, arg: str, /) -> None: ...

    @property
    def order(self) -> str:
        """
        visiting order of the training ratings (auto: grid with > 1 thread on >= 2^20 ratings, else shuffle)
        """

    @order.setter
    def order(self, arg: str, /) -> None: ...

    @property
    def user_groups(self) -> int:
        """
        user groups by rating count (ties are never split: fewer may be realised)
        """

    @user_groups.setter
    def user_groups(self, arg: int, /) -> None: ...

    @property
    def item_groups(self) -> int:
        """item groups by rating count"""

    @item_groups.setter
    def item_groups(self, arg: int, /) -> None: ...

    @property
    def period(self) -> int:
        """measure the q-error every N epochs after warm-up"""

    @period.setter
    def period(self, arg: int, /) -> None: ...

    @property
    def sample_ratio(self) -> float:
        """share of ratings sampled for the q-error (and --grad-stats)"""

    @sample_ratio.setter
    def sample_ratio(self, arg: float, /) -> None: ...

    @property
    def threshold(self) -> float:
        """switch a group when its q-error / its first measurement > X"""

    @threshold.setter
    def threshold(self, arg: float, /) -> None: ...

    @property
    def warmup(self) -> int:
        """first measured epoch, 0-based"""

    @warmup.setter
    def warmup(self, arg: int, /) -> None: ...

    @property
    def random_fp16(self) -> float:
        """
        paper Fig. 4: store a random share F of the user and item rows in FP16, the rest FP32, no switching
        """

    @random_fp16.setter
    def random_fp16(self, arg: float, /) -> None: ...

    @property
    def grad_stats(self) -> bool:
        """
        paper Fig. 5: report each group's mean sampled-gradient norm every epoch
        """

    @grad_stats.setter
    def grad_stats(self, arg: bool, /) -> None: ...

    @property
    def eval_every_epoch(self) -> bool:
        """test RMSE after every epoch (outside the timed pass)"""

    @eval_every_epoch.setter
    def eval_every_epoch(self, arg: bool, /) -> None: ...

    @property
    def valid_fraction(self) -> float:
        """
        hold out a seeded share F in [0, 1) of each user's training ratings as a validation set (0: off)
        """

    @valid_fraction.setter
    def valid_fraction(self, arg: float, /) -> None: ...

    @property
    def early_stop(self) -> int:
        """
        stop after N epochs without a better validation (else test) RMSE and keep the best epoch's factors (0: off)
        """

    @early_stop.setter
    def early_stop(self, arg: int, /) -> None: ...

class Context:
    """Where and how a job runs (device, threads, seed, deterministic)."""

    def __init__(self) -> None: ...

    def validate(self) -> None: ...

    def for_run(self) -> Context:
        """
        The context a run uses: deterministic => one CPU thread on the CPU device (a conflicting threads or device setting is a ValueError).
        """

    def resolved_threads(self) -> int: ...

    @property
    def device(self) -> str:
        """
        where to train; auto: CUDA when a GPU is visible and takes the job, else the CPU
        """

    @device.setter
    def device(self, arg: str, /) -> None: ...

    @property
    def threads(self) -> int:
        """CPU worker threads, 0 = all hardware threads"""

    @threads.setter
    def threads(self, arg: int, /) -> None: ...

    @property
    def seed(self) -> int:
        """
        seeds init, visiting order, sampling and synthetic data: a run is a function of it
        """

    @seed.setter
    def seed(self, arg: int, /) -> None: ...

    @property
    def deterministic(self) -> bool:
        """
        one CPU thread, fixed order: bit-for-bit reproducible (also across resume)
        """

    @deterministic.setter
    def deterministic(self, arg: bool, /) -> None: ...

def param_table() -> list:
    """
    The parameter table (mascot/params.h): one dict per parameter with name, type (int, uint64, float, double, bool, int_list, enum), scope (config, competing, context: TrainConfig, its CompetingParams, Context), default, check and, for integers, min and max, choices (enums), methods, section, flag (mascot_train's option) and help.
    """

def preset_names() -> list[str]:
    """The built-in presets (paper)."""

def read_preset(name_or_path: str | bytes | os.PathLike[str]) -> dict:
    """
    A built-in preset by name, else a preset file, read and checked by the parameter table: {name, params: {name: value}, valid_rmse (None when absent), source}.  ValueError / OSError: one line naming the file and the field.
    """

def parse_preset(text: str, what: str) -> dict:
    """
    A preset file's text, checked as read_preset checks a file (`what` names it).
    """

def method_names() -> list[str]: ...

def method_traits() -> dict:
    """
    The method-traits table (mascot/methods.h): {method: {storage, arithmetic, switching, uses_groups, stochastic_rounding, random_fp16, grad_stats, backends, bytes_per_element}}.
    """

def resolved_threads(threads: int) -> int:
    """
    The CPU thread count a run with this `threads` setting uses (0: every core the host reports, at least 1): what a run report's top-level "threads" holds.
    """

__version__: str

HAS_CUDA: bool

def cuda_device_count() -> int:
    """Visible CUDA devices (0 without CUDA, a driver or a GPU)."""

def cuda_unavailable_reason() -> str:
    """
    Why the GPU cannot be used (no CUDA backend, no device or driver, an old driver, an earlier device fault in this process), or '' when it can.
    """

def cuda_unsupported_reason(config: TrainConfig) -> str:
    """
    Why the CUDA kernels do not take this configuration (k, order, a study option), '' when they do: --device cuda refuses such a job, auto trains it on the CPU.
    """

def cuda_device_name() -> str:
    """
    Name, compute capability, SMs and memory of the current CUDA device (RuntimeError without one).
    """

def cuda_copy_bandwidth(bytes: int = 1073741824, reps: int = 20) -> float:
    """
    Device-to-device copy bandwidth in GB/s (read + write bytes, median of reps, CUDA events).
    """

def kernel_isa() -> str:
    """Instruction set of the CPU kernels picked for this host."""

def read_ratings(path: str | bytes | os.PathLike[str]) -> tuple: ...

def read_mrat(path: str | bytes | os.PathLike[str]) -> tuple: ...

def read_text(path: str | bytes | os.PathLike[str]) -> tuple: ...

def write_mrat(path: str | bytes | os.PathLike[str], users: Annotated[NDArray[numpy.int32], dict(shape=(None,), order='C', device='cpu', writable=False)], items: Annotated[NDArray[numpy.int32], dict(shape=(None,), order='C', device='cpu', writable=False)], ratings: Annotated[NDArray[numpy.float32], dict(shape=(None,), order='C', device='cpu', writable=False)], n_users: int, n_items: int) -> None: ...

def write_text(path: str | bytes | os.PathLike[str], users: Annotated[NDArray[numpy.int32], dict(shape=(None,), order='C', device='cpu', writable=False)], items: Annotated[NDArray[numpy.int32], dict(shape=(None,), order='C', device='cpu', writable=False)], ratings: Annotated[NDArray[numpy.float32], dict(shape=(None,), order='C', device='cpu', writable=False)], n_users: int, n_items: int) -> None: ...

def synthetic(name: str, scale: float = 1.0, seed: int = 42, threads: int = 0, user_exponent: float | None = None, item_exponent: float | None = None) -> tuple: ...

def synthetic_skew_names() -> list[str]: ...

def synthetic_names() -> list[str]: ...

def parse_synthetic_spec(arg: str, /) -> object: ...

def synthetic_shape(name: str) -> dict:
    """Table I shape of a synthetic dataset (unscaled)."""

def data_root() -> str:
    """$MASCOT_DATA, else ~/.cache/mascot: where prepared datasets live."""

def resolve_dataset(name: str) -> dict:
    """
    A dataset name as mascot_train --dataset reads it: kind (synthetic, prepared), synthetic name and scale, or the prepared train / test paths, and `unavailable` (why a prepared one cannot be read, '' when it can).
    """

def planned_shape(name: str) -> object:
    """
    (n_users, n_items, n_train, n_test) of a synthetic dataset before it is generated (the generator's sizes; n_test the expected share of the seeded split), None for other names.
    """

def valid_split(users: Annotated[NDArray[numpy.int32], dict(shape=(None,), order='C', device='cpu', writable=False)], items: Annotated[NDArray[numpy.int32], dict(shape=(None,), order='C', device='cpu', writable=False)], ratings: Annotated[NDArray[numpy.float32], dict(shape=(None,), order='C', device='cpu', writable=False)], n_users: int, n_items: int, fraction: float, seed: int) -> tuple:
    """
    The validation hold-out of valid_fraction (the trainer's split with seed = the run's seed): of each user's n_u ratings floor(fraction * n_u), chosen by a seeded hash of (user, item); returns (train, valid) as (users, items, ratings, n_users, n_items) tuples in the input's order.
    """

def train(config: TrainConfig, context: Context, users: Annotated[NDArray[numpy.int32], dict(shape=(None,), order='C', device='cpu', writable=False)], items: Annotated[NDArray[numpy.int32], dict(shape=(None,), order='C', device='cpu', writable=False)], ratings: Annotated[NDArray[numpy.float32], dict(shape=(None,), order='C', device='cpu', writable=False)], n_users: int, n_items: int, test_users: Annotated[NDArray[numpy.int32], dict(shape=(None,), order='C', device='cpu', writable=False)] | None = None, test_items: Annotated[NDArray[numpy.int32], dict(shape=(None,), order='C', device='cpu', writable=False)] | None = None, test_ratings: Annotated[NDArray[numpy.float32], dict(shape=(None,), order='C', device='cpu', writable=False)] | None = None, name: str = '', on_epoch: Callable[[dict], bool] | None = None) -> tuple:
    """Trains; returns (P, Q, report_json) with P, Q in original id order."""

def train_checkpointed(config: TrainConfig, context: Context, users: Annotated[NDArray[numpy.int32], dict(shape=(None,), order='C', device='cpu', writable=False)], items: Annotated[NDArray[numpy.int32], dict(shape=(None,), order='C', device='cpu', writable=False)], ratings: Annotated[NDArray[numpy.float32], dict(shape=(None,), order='C', device='cpu', writable=False)], n_users: int, n_items: int, test_users: Annotated[NDArray[numpy.int32], dict(shape=(None,), order='C', device='cpu', writable=False)] | None, test_items: Annotated[NDArray[numpy.int32], dict(shape=(None,), order='C', device='cpu', writable=False)] | None, test_ratings: Annotated[NDArray[numpy.float32], dict(shape=(None,), order='C', device='cpu', writable=False)] | None, name: str, on_epoch: Callable[[dict], bool] | None, checkpoint: str | bytes | os.PathLike[str], every: int = 1) -> tuple:
    """
    train() writing checkpoints into `checkpoint` (deterministic: the context's); returns (P, Q, report_json).
    """

def resume(dir: str | bytes | os.PathLike[str], users: Annotated[NDArray[numpy.int32], dict(shape=(None,), order='C', device='cpu', writable=False)], items: Annotated[NDArray[numpy.int32], dict(shape=(None,), order='C', device='cpu', writable=False)], ratings: Annotated[NDArray[numpy.float32], dict(shape=(None,), order='C', device='cpu', writable=False)], n_users: int, n_items: int, test_users: Annotated[NDArray[numpy.int32], dict(shape=(None,), order='C', device='cpu', writable=False)] | None = None, test_items: Annotated[NDArray[numpy.int32], dict(shape=(None,), order='C', device='cpu', writable=False)] | None = None, test_ratings: Annotated[NDArray[numpy.float32], dict(shape=(None,), order='C', device='cpu', writable=False)] | None = None, on_epoch: Callable[[dict], bool] | None = None, every: int = 0, epochs: int = 0) -> tuple:
    """
    Continues the run saved in `dir` on the same data (epochs > 0: to that many epochs in total); returns (P, Q, report_json).
    """

def read_checkpoint(dir: str | bytes | os.PathLike[str], verify: bool = True) -> dict:
    """
    Validates DIR's checkpoint (manifest, every file's size and, with verify, checksum); returns its metadata and report JSON.
    """

def memory_plan(config: TrainConfig, context: Context, n_users: int, n_items: int, n_train: int, n_test: int, inputs_loaded: bool) -> tuple:
    """
    Memory plan of a job with these shapes: (json, text).  Allocates nothing.
    """

def save_model(dir: str | bytes | os.PathLike[str], P: Annotated[NDArray[numpy.float32], dict(shape=(None, None), order='C', device='cpu', writable=False)], Q: Annotated[NDArray[numpy.float32], dict(shape=(None, None), order='C', device='cpu', writable=False)], model_json: str, extra: Sequence[tuple[str, bytes]] = []) -> None:
    """
    Writes the model directory atomically; `extra` = [(file name, bytes)] written inside it too.
    """

def export_libmf(path: str | bytes | os.PathLike[str], P: Annotated[NDArray[numpy.float32], dict(shape=(None, None), order='C', device='cpu', writable=False)], Q: Annotated[NDArray[numpy.float32], dict(shape=(None, None), order='C', device='cpu', writable=False)], bias: float, user_rated: Annotated[NDArray[numpy.uint8], dict(shape=(None,), order='C', device='cpu', writable=False)] | None = None, item_rated: Annotated[NDArray[numpy.uint8], dict(shape=(None,), order='C', device='cpu', writable=False)] | None = None) -> None:
    """
    Writes LIBMF's text model format atomically (rows whose rated flag is 0 are written as F).
    """

def load_model(arg: str | bytes | os.PathLike[str], /) -> tuple: ...

class AlsRun:
    """One ALS run (cpp/src/als/als_run.h): prepare, run_epoch, factors."""

    def __init__(self) -> None: ...

    def prepare(self, users: Annotated[NDArray[numpy.int32], dict(shape=(None,), order='C', device='cpu', writable=False)], items: Annotated[NDArray[numpy.int32], dict(shape=(None,), order='C', device='cpu', writable=False)], values: Annotated[NDArray[numpy.float32], dict(shape=(None,), order='C', device='cpu', writable=False)], n_users: int, n_items: int, test_users: Annotated[NDArray[numpy.int32], dict(shape=(None,), order='C', device='cpu', writable=False)] | None = None, test_items: Annotated[NDArray[numpy.int32], dict(shape=(None,), order='C', device='cpu', writable=False)] | None = None, test_values: Annotated[NDArray[numpy.float32], dict(shape=(None,), order='C', device='cpu', writable=False)] | None = None, k: int = 64, lambda_p: float = 0.10000000149011612, lambda_q: float = 0.10000000149011612, implicit: bool = False, alpha: float = 1.0, weighted: bool = True, solver: str = 'cg', cg_steps: int = 3, hermitian_half: bool = False, factors_half: bool = False, cg_form: str = 'auto', init_std: float = 0.009999999776482582, device: str = 'auto', threads: int = 0, seed: int = 42) -> None: ...

    def run_epoch(self) -> int:
        """One ALS iteration (users, then items); returns the ratings touched."""

    def test_sse(self) -> float: ...

    def test_size(self) -> int: ...

    def describe(self) -> str: ...

    def factors(self) -> tuple:
        """(P, Q) as float32 arrays."""

    def set_factors(self, arg0: Annotated[NDArray[numpy.float32], dict(shape=(None, None), order='C', device='cpu', writable=False)], arg1: Annotated[NDArray[numpy.float32], dict(shape=(None, None), order='C', device='cpu', writable=False)], /) -> None: ...

def als_kernel_isa() -> str:
    """Instruction set of the ALS kernels picked for this host."""

def als_cg_form(k: int, solver: str = 'cg', cg_steps: int = 3, hermitian_half: bool = False, cg_form: str = 'auto') -> str:
    """
    The form the CG solver takes under these options ('hermitian' or 'matrix_free').
    """

def dask_init_rows(original_ids: Annotated[NDArray[numpy.int32], dict(shape=(None,), order='C', device='cpu', writable=False)], k: int, std: float, seed: int, side: str, half: bool) -> object:
    """
    Initial factor rows of the given ORIGINAL ids (detail::init_row), float32 or FP16 bits (uint16).
    """

def dask_sgd_block(users: Annotated[NDArray[numpy.int32], dict(shape=(None,), order='C', device='cpu', writable=False)], items: Annotated[NDArray[numpy.int32], dict(shape=(None,), order='C', device='cpu', writable=False)], ratings: Annotated[NDArray[numpy.float32], dict(shape=(None,), order='C', device='cpu', writable=False)], P: Annotated[NDArray, dict(shape=(None, None), order='C', device='cpu')], Q: Annotated[NDArray, dict(shape=(None, None), order='C', device='cpu')], half: bool, lr: float, lambda_p: float, lambda_q: float, stochastic: bool, seed: int, epoch: int, block: int) -> int:
    """
    One DSGD block: the ratings (block-local ids) in a seeded order of (seed, epoch, block), updating the
    P and Q blocks in place (float32, or FP16 bits for mascot-n1) with the CPU kernels; returns the updates.
    """

def dask_block_sse(users: Annotated[NDArray[numpy.int32], dict(shape=(None,), order='C', device='cpu', writable=False)], items: Annotated[NDArray[numpy.int32], dict(shape=(None,), order='C', device='cpu', writable=False)], ratings: Annotated[NDArray[numpy.float32], dict(shape=(None,), order='C', device='cpu', writable=False)], P: Annotated[NDArray, dict(shape=(None, None), order='C', device='cpu')], Q: Annotated[NDArray, dict(shape=(None, None), order='C', device='cpu')], half: bool) -> float:
    """
    Sum of squared errors of the ratings (block-local ids) on the P and Q blocks (the kernels' FP32 dot).
    """

def dask_mixed_block(users: Annotated[NDArray[numpy.int32], dict(shape=(None,), order='C', device='cpu', writable=False)], items: Annotated[NDArray[numpy.int32], dict(shape=(None,), order='C', device='cpu', writable=False)], ratings: Annotated[NDArray[numpy.float32], dict(shape=(None,), order='C', device='cpu', writable=False)], P32: Annotated[NDArray, dict(shape=(None, None), order='C', device='cpu')], P16: Annotated[NDArray, dict(shape=(None, None), order='C', device='cpu')], user_start: Annotated[NDArray[numpy.int32], dict(shape=(None,), order='C', device='cpu', writable=False)], user_fp32: Annotated[NDArray[numpy.uint8], dict(shape=(None,), order='C', device='cpu', writable=False)], Q32: Annotated[NDArray, dict(shape=(None, None), order='C', device='cpu')], Q16: Annotated[NDArray, dict(shape=(None, None), order='C', device='cpu')], item_start: Annotated[NDArray[numpy.int32], dict(shape=(None,), order='C', device='cpu', writable=False)], item_fp32: Annotated[NDArray[numpy.uint8], dict(shape=(None,), order='C', device='cpu', writable=False)], lr: float, lambda_p: float, lambda_q: float, stochastic: bool, seed: int, epoch: int, block: int, sample: bool, sample_ratio: float) -> tuple:
    """
    One DSGD block of the per-group kernel (method mascot): rows of FP32 groups in P32 / Q32, of FP16 groups
    in P16 / Q16 (full-size arrays, block-local group tables).  Returns (updates, user sums, item sums), the
    sums (per group: gradient sum groups x k, squared norms, count) when `sample`, else None.
    """

def dask_mixed_sse(users: Annotated[NDArray[numpy.int32], dict(shape=(None,), order='C', device='cpu', writable=False)], items: Annotated[NDArray[numpy.int32], dict(shape=(None,), order='C', device='cpu', writable=False)], ratings: Annotated[NDArray[numpy.float32], dict(shape=(None,), order='C', device='cpu', writable=False)], P32: Annotated[NDArray, dict(shape=(None, None), order='C', device='cpu')], P16: Annotated[NDArray, dict(shape=(None, None), order='C', device='cpu')], user_start: Annotated[NDArray[numpy.int32], dict(shape=(None,), order='C', device='cpu', writable=False)], user_fp32: Annotated[NDArray[numpy.uint8], dict(shape=(None,), order='C', device='cpu', writable=False)], Q32: Annotated[NDArray, dict(shape=(None, None), order='C', device='cpu')], Q16: Annotated[NDArray, dict(shape=(None, None), order='C', device='cpu')], item_start: Annotated[NDArray[numpy.int32], dict(shape=(None,), order='C', device='cpu', writable=False)], item_fp32: Annotated[NDArray[numpy.uint8], dict(shape=(None,), order='C', device='cpu', writable=False)]) -> float:
    """Test SSE on per-group blocks (dask_mixed_block's layout)."""

def dask_split_groups(counts: Annotated[NDArray[numpy.int64], dict(shape=(None,), order='C', device='cpu', writable=False)], groups: int) -> object:
    """
    Group boundaries of rows sorted by rating count (reorder.h split_groups).
    """

def dask_measured_epoch(epoch: int, warmup: int, period: int) -> bool:
    """Whether epoch e measures the q-error (g-switching)."""

def dask_qerror(sum: Annotated[NDArray[numpy.float64], dict(shape=(None, None), order='C', device='cpu', writable=False)], sq: Annotated[NDArray[numpy.float64], dict(shape=(None,), order='C', device='cpu', writable=False)], n: Annotated[NDArray[numpy.int64], dict(shape=(None,), order='C', device='cpu', writable=False)]) -> object:
    """Eq. 4 q-error per group from summed gradient samples (-1: none)."""

class GroupSwitcher:
    """g-switching's decision (detail::Switcher) for one side."""

    def __init__(self, groups: int, threshold: float) -> None: ...

    def update(self, qerror: Annotated[NDArray[numpy.float64], dict(shape=(None,), order='C', device='cpu', writable=False)], fp32: Annotated[NDArray[numpy.uint8], dict(shape=(None,), order='C', device='cpu', writable=False)]) -> list[int]:
        """
        The groups that switch to FP32 after this measurement (baselines kept).
        """

class OutputSet:
    """
    The publication of outputs (mascot/detail/fileutil.h): declare inputs and outputs, prepare() (resolve, check, stage beside the targets), fill the staged temps, publish() them all or none; discard() (or dropping the object) removes what is staged.  mascot._files wraps it.
    """

    def __init__(self) -> None: ...

    def input(self, what: str, path: str | bytes | os.PathLike[str]) -> None:
        """A file the caller reads: no output may be it or contain it."""

    def file(self, what: str, path: str | bytes | os.PathLike[str]) -> int:
        """A file output; returns its handle."""

    def directory(self, what: str, path: str | bytes | os.PathLike[str], own: Sequence[str], marker: str = '', replace: bool = True, content: str = 'the output') -> int:
        """
        A directory output replaced as a whole: an existing one must hold only names in `own` (and `marker` when not empty); replace=False refuses any existing one.
        """

    def model_directory(self, what: str, path: str | bytes | os.PathLike[str]) -> int:
        """A model directory output (the core's rules: model_dir_spec)."""

    def prepare(self) -> None:
        """Resolves, checks and stages the outputs declared so far."""

    def staging_path(self, handle: int) -> object:
        """The staged temp file or directory to fill."""

    def target_path(self, handle: int) -> object:
        """The resolved target (symlinks followed)."""

    def write(self, handle: int, data: bytes) -> None:
        """Appends bytes to a file output's staged content."""

    def publish(self) -> None:
        """
        Puts every output in place, all or none (a FIFO target waits for its reader).
        """

    def discard(self) -> None:
        """Removes everything staged; releases locks."""

    @property
    def published(self) -> bool: ...

    @property
    def discarded(self) -> bool: ...

    @property
    def notes(self) -> list[str]:
        """
        What prepare() did that a user may want to know (an interrupted replacement put back).
        """

class _testing:
    """Test hooks: internals of the core for the tests and the NumPy reference (not part of the API)."""

    @staticmethod
    def cuda_qerror(grads: Annotated[NDArray[numpy.float32], dict(shape=(None, None), order='C', device='cpu', writable=False)], group: Annotated[NDArray[numpy.int32], dict(shape=(None,), order='C', device='cpu', writable=False)], groups: int, slots: int = 4) -> object:
        """
        Test hook: qerror() computed by the CUDA backend's accumulation kernel (k in [1, 512]).
        """

    @staticmethod
    def reorder(users: Annotated[NDArray[numpy.int32], dict(shape=(None,), order='C', device='cpu', writable=False)], items: Annotated[NDArray[numpy.int32], dict(shape=(None,), order='C', device='cpu', writable=False)], n_users: int, n_items: int, user_groups: int, item_groups: int, random_fp16: float = -1.0, seed: int = 42) -> dict:
        """
        Group-based reconstruction (test hook); random_fp16 >= 0: the potential study's random split.
        """

    @staticmethod
    def split_groups(counts: Annotated[NDArray[numpy.int64], dict(shape=(None,), order='C', device='cpu', writable=False)], groups: int) -> object:
        """
        Group boundaries of rows sorted by rating count (reorder.h split_groups).
        """

    @staticmethod
    def init_factors(n: int, k: int, std: float, seed: int, side: str) -> object:
        """Initial factors of ids 0..n-1, exactly as training starts."""

    @staticmethod
    def visit_order(users: Annotated[NDArray[numpy.int32], dict(shape=(None,), order='C', device='cpu', writable=False)], items: Annotated[NDArray[numpy.int32], dict(shape=(None,), order='C', device='cpu', writable=False)], n_users: int, n_items: int, order: str, epochs: int, threads: int = 1, k: int = 128, half: bool = False, seed: int = 42) -> object: ...

    @staticmethod
    def schedule_check(users: Annotated[NDArray[numpy.int32], dict(shape=(None,), order='C', device='cpu', writable=False)], items: Annotated[NDArray[numpy.int32], dict(shape=(None,), order='C', device='cpu', writable=False)], n_users: int, n_items: int, order: str, threads: int, epochs: int = 1, k: int = 128, half: bool = False, seed: int = 42, spin_us: int = 20) -> dict:
        """
        Test hook (cpu/schedule.h check_schedule): runs the CPU schedule with instrumented callbacks and
        returns what it saw (row and strip conflicts between threads, overlaps, each rating once).
        """

    @staticmethod
    def lookup_groups(start: Annotated[NDArray[numpy.int32], dict(shape=(None,), order='C', device='cpu', writable=False)], ids: Annotated[NDArray[numpy.int32], dict(shape=(None,), order='C', device='cpu', writable=False)], naive: bool) -> object:
        """
        Test hook: mascot::lookup_group of each id (naive: the branching binary search of mascot-naive).
        """

    @staticmethod
    def hogwild_workers(fill: int, max_row_ratings: int, nnz: int) -> int:
        """
        Test hook: the CUDA backend's Hogwild worker count (detail/hogwild.h) with the overlap bound
        of MASCOT_CUDA_OVERLAP or the default of the write mode (MASCOT_CUDA_WRITES).
        """

    @staticmethod
    def qerror(grads: Annotated[NDArray[numpy.float32], dict(shape=(None, None), order='C', device='cpu', writable=False)], group: Annotated[NDArray[numpy.int32], dict(shape=(None,), order='C', device='cpu', writable=False)], groups: int) -> object:
        """Eq. 4 q-error per group of the given gradient samples (-1: none)."""

    @staticmethod
    def switch_epochs(qerror: Annotated[NDArray[numpy.float64], dict(shape=(None, None), order='C', device='cpu', writable=False)], threshold: float) -> object:
        """Switching rule of g-switching on a sequence of q-error measurements."""

    @staticmethod
    def sr_words(seed: int, epoch: int, u: int, i: int, k: int) -> tuple:
        """Random words of the stochastic FP16 stores of one update."""

    @staticmethod
    def mixed_sgd_pass(users: Annotated[NDArray[numpy.int32], dict(shape=(None,), order='C', device='cpu', writable=False)], items: Annotated[NDArray[numpy.int32], dict(shape=(None,), order='C', device='cpu', writable=False)], ratings: Annotated[NDArray[numpy.float32], dict(shape=(None,), order='C', device='cpu', writable=False)], P: Annotated[NDArray[numpy.float32], dict(shape=(None, None), order='C', device='cpu', writable=False)], Q: Annotated[NDArray[numpy.float32], dict(shape=(None, None), order='C', device='cpu', writable=False)], user_start: Annotated[NDArray[numpy.int32], dict(shape=(None,), order='C', device='cpu', writable=False)], user_fp32: Annotated[NDArray[numpy.uint8], dict(shape=(None,), order='C', device='cpu', writable=False)], item_start: Annotated[NDArray[numpy.int32], dict(shape=(None,), order='C', device='cpu', writable=False)], item_fp32: Annotated[NDArray[numpy.uint8], dict(shape=(None,), order='C', device='cpu', writable=False)], lr: float, lambda_p: float, lambda_q: float, stochastic: bool = False, seed: int = 0, epoch: int = 0, user_ada: Annotated[NDArray[numpy.float32], dict(shape=(None,), order='C', device='cpu', writable=False)] | None = None, item_ada: Annotated[NDArray[numpy.float32], dict(shape=(None,), order='C', device='cpu', writable=False)] | None = None) -> object:
        """
        Test hook: one pass of the CPU per-group (MASCOT) kernel over the ratings in this order; returns
        (P, Q) as stored (FP32 groups' rows as floats, the others as halves); with user_ada / item_ada
        (the rows' adagrad states) schedule adagrad with eta0 = lr, and (P, Q, user_ada', item_ada').
        """

    @staticmethod
    def half_round(x: Annotated[NDArray[numpy.float32], dict(shape=(None,), order='C', device='cpu', writable=False)], mode: str = 'nearest', seed: int = 0) -> object:
        """Software FP16 rounding of the core (for tests)."""

    @staticmethod
    def half_round_words(x: Annotated[NDArray[numpy.float32], dict(shape=(None,), order='C', device='cpu', writable=False)], words: Annotated[NDArray[numpy.uint32], dict(shape=(None,), order='C', device='cpu', writable=False)]) -> object:
        """Stochastic FP16 rounding with the given random words."""

    @staticmethod
    def fixed_point_frac_bits(max_abs: float, word_length: int, rule: str = 'muppet') -> int:
        """
        Fractional bits f (scale 2^f) for a tensor with this max |x|: MuPPET's rule (largest f with max|x| 2^f <= 2^(WL-1) - 0.5) or AFP's (-s, s = ceil(log2(max|x| / (2^(WL-1) - 1)))).
        """

    @staticmethod
    def fixed_point_quantize(x: Annotated[NDArray[numpy.float32], dict(shape=(None,), order='C', device='cpu', writable=False)], word_length: int, frac_bits: int | None = None, max_abs: float | None = None, mode: str = 'nearest', seed: int = 0, codes: bool = False) -> object:
        """
        Dynamic fixed point: the values (or with codes=True the integers) x quantizes to at this word length; the scale is frac_bits, or MuPPET's rule on max_abs (default: max |x|).  Stochastic rounding draws element t's word from hash3(seed, kStreamRound, t).
        """

    @staticmethod
    def half_round_fast(x: Annotated[NDArray[numpy.float32], dict(shape=(None,), order='C', device='cpu', writable=False)], mode: str = 'nearest', seed: int = 0) -> object:
        """
        The branchless FP16 rounding MPT uses (must equal _core.half_round with the same seed).
        """

    @staticmethod
    def afp_point_position(range: float, bits: int) -> int:
        """AFP's point position s = ceil(log2(range / (2^(bits-1) - 1)))."""

    @staticmethod
    def afp_quant_error(x: Annotated[NDArray[numpy.float32], dict(shape=(None,), order='C', device='cpu', writable=False)], bits: int, point_position: int | None = None) -> float:
        """
        AFP's quantization error log2(|sum|x| - sum|x_q|| / sum|x| + 1), nearest rounding.
        """

    @staticmethod
    def afp_rule(err_low: Sequence[float], err_high: Sequence[float], ranges: Sequence[float], params: CompetingParams | None = None) -> dict:
        """
        AFP's bit-width and update-interval rule over successive re-evaluations of one tensor: at re-evaluation x the tensor's error at the low width is err_low[x] (8 bits; above the threshold the width is the high one), at the high width err_high[x] (16 bits), and its max |x| is ranges[x].  Returns per re-evaluation its iteration, bits, point position, interval and the error used.
        """

    @staticmethod
    def muppet_diversity(grads: Annotated[NDArray[numpy.float64], dict(shape=(None, None, None), order='C', device='cpu', writable=False)]) -> float:
        """
        MuPPET's inter-epoch gradient diversity of a window: grads[epoch, layer, k] -> mean over layers of sum_e ||g||^2 / ||sum_e g||^2 (nan when no layer has gradient).
        """

    @staticmethod
    def muppet_policy(diversity: Sequence[float], params: CompetingParams | None = None) -> dict:
        """
        MuPPET's switching policy over epochs: diversity[e] is the window's mean gradient diversity at the end of epoch e (only read at evaluation epochs, (e+1) % resolution == 0; nan = no data).  Returns the word length used in each epoch (32 = FP32), the epochs after which it switched, and per epoch whether it evaluated, the ratio max/diversity, the threshold T(e) and the violation count.
        """

    @staticmethod
    def mpt_loss_scale(overflow: Sequence[bool], loss_scale: float = 1000.0, dynamic: bool = True, window: int = 2000) -> tuple:
        """
        MPT's loss-scale rule on a sequence of updates (overflow[t]: the FP16 scaled gradient of update t overflowed).  Returns (the scale each update used, whether each update was applied).
        """

    @staticmethod
    def als_solve_side(indptr: Annotated[NDArray[numpy.int64], dict(shape=(None,), order='C', device='cpu', writable=False)], indices: Annotated[NDArray[numpy.int32], dict(shape=(None,), order='C', device='cpu', writable=False)], values: Annotated[NDArray[numpy.float32], dict(shape=(None,), order='C', device='cpu', writable=False)], Y: Annotated[NDArray[numpy.float32], dict(shape=(None, None), order='C', device='cpu', writable=False)], X: Annotated[NDArray[numpy.float32], dict(shape=(None, None), order='C', device='cpu', writable=False)], lam: float, implicit: bool = False, alpha: float = 1.0, solver: str = 'cg', cg_steps: int = 3, weighted: bool = True, hermitian_half: bool = False, factors_half: bool = False, threads: int = 1, device: str = 'cpu', cg_form: str = 'auto') -> object:
        """
        Test hook: one ALS side's solve (new X from Y and the CSR rows of X's side); see tests/python/reference_als.py.
        """

    @staticmethod
    def als_hermitian(indptr: Annotated[NDArray[numpy.int64], dict(shape=(None,), order='C', device='cpu', writable=False)], indices: Annotated[NDArray[numpy.int32], dict(shape=(None,), order='C', device='cpu', writable=False)], values: Annotated[NDArray[numpy.float32], dict(shape=(None,), order='C', device='cpu', writable=False)], Y: Annotated[NDArray[numpy.float32], dict(shape=(None, None), order='C', device='cpu', writable=False)], lam: float, implicit: bool = False, alpha: float = 1.0, weighted: bool = True, hermitian_half: bool = False, factors_half: bool = False, device: str = 'cpu') -> tuple:
        """
        Test hook: every row's (A_u, b_u) as the ALS solver reads them (get_hermitian and get_bias).
        """

    @staticmethod
    def als_gram(Y: Annotated[NDArray[numpy.float32], dict(shape=(None, None), order='C', device='cpu', writable=False)], half: bool = False, threads: int = 1) -> object:
        """Test hook: Y^T Y as the implicit solver computes it."""

    @staticmethod
    def als_csr(rows: int, cols: int, row_ids: Annotated[NDArray[numpy.int32], dict(shape=(None,), order='C', device='cpu', writable=False)], col_ids: Annotated[NDArray[numpy.int32], dict(shape=(None,), order='C', device='cpu', writable=False)], values: Annotated[NDArray[numpy.float32], dict(shape=(None,), order='C', device='cpu', writable=False)], drop_zeros: bool = False) -> tuple:
        """Test hook: the ALS solver's CSR of triplets."""

    @staticmethod
    def set_publish_fault(spec: str) -> None:
        """
        Test hook: fault points of the publication (mascot/detail/fileutil.h, set_publish_fault); '' clears.
        """
