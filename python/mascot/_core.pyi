"""MASCOT core (C++): low-precision matrix-factorization training"""

from collections.abc import Callable
from typing import Annotated

import numpy
from numpy.typing import NDArray


__version__: str

HAS_CUDA: bool

def cuda_device_count() -> int:
    """Visible CUDA devices (0 without CUDA, a driver or a GPU)."""

def kernel_isa() -> str:
    """Instruction set of the CPU kernels picked for this host."""

def method_names() -> list[str]: ...

class TrainConfig:
    """Training parameters (DESIGN.md §3); validate() names bad fields."""

    def __init__(self) -> None: ...

    @property
    def k(self) -> int: ...

    @k.setter
    def k(self, arg: int, /) -> None: ...

    @property
    def epochs(self) -> int: ...

    @epochs.setter
    def epochs(self, arg: int, /) -> None: ...

    @property
    def lr(self) -> float: ...

    @lr.setter
    def lr(self, arg: float, /) -> None: ...

    @property
    def decay(self) -> float: ...

    @decay.setter
    def decay(self, arg: float, /) -> None: ...

    @property
    def lambda_p(self) -> float: ...

    @lambda_p.setter
    def lambda_p(self, arg: float, /) -> None: ...

    @property
    def lambda_q(self) -> float: ...

    @lambda_q.setter
    def lambda_q(self, arg: float, /) -> None: ...

    @property
    def init_std(self) -> float: ...

    @init_std.setter
    def init_std(self, arg: float, /) -> None: ...

    @property
    def user_groups(self) -> int: ...

    @user_groups.setter
    def user_groups(self, arg: int, /) -> None: ...

    @property
    def item_groups(self) -> int: ...

    @item_groups.setter
    def item_groups(self, arg: int, /) -> None: ...

    @property
    def period(self) -> int: ...

    @period.setter
    def period(self, arg: int, /) -> None: ...

    @property
    def sample_ratio(self) -> float: ...

    @sample_ratio.setter
    def sample_ratio(self, arg: float, /) -> None: ...

    @property
    def threshold(self) -> float: ...

    @threshold.setter
    def threshold(self, arg: float, /) -> None: ...

    @property
    def warmup(self) -> int: ...

    @warmup.setter
    def warmup(self, arg: int, /) -> None: ...

    @property
    def eval_every_epoch(self) -> bool: ...

    @eval_every_epoch.setter
    def eval_every_epoch(self, arg: bool, /) -> None: ...

    @property
    def method(self) -> str: ...

    @method.setter
    def method(self, arg: str, /) -> None: ...

    @property
    def rounding(self) -> str: ...

    @rounding.setter
    def rounding(self, arg: str, /) -> None: ...

    @property
    def order(self) -> str: ...

    @order.setter
    def order(self, arg: str, /) -> None: ...

    def validate(self) -> None: ...

    def lr_at(self, epoch: int) -> float: ...

def train(config: TrainConfig, device: str, threads: int, seed: int, users: Annotated[NDArray[numpy.int32], dict(shape=(None,), order='C', device='cpu', writable=False)], items: Annotated[NDArray[numpy.int32], dict(shape=(None,), order='C', device='cpu', writable=False)], ratings: Annotated[NDArray[numpy.float32], dict(shape=(None,), order='C', device='cpu', writable=False)], n_users: int, n_items: int, test_users: Annotated[NDArray[numpy.int32], dict(shape=(None,), order='C', device='cpu', writable=False)] | None = None, test_items: Annotated[NDArray[numpy.int32], dict(shape=(None,), order='C', device='cpu', writable=False)] | None = None, test_ratings: Annotated[NDArray[numpy.float32], dict(shape=(None,), order='C', device='cpu', writable=False)] | None = None, name: str = '', on_epoch: Callable[[dict], bool] | None = None) -> tuple:
    """Trains; returns (P, Q, report_json) with P, Q in original id order."""

def read_ratings(path: str) -> tuple: ...

def read_mrat(path: str) -> tuple: ...

def read_text(path: str) -> tuple: ...

def write_mrat(path: str, users: Annotated[NDArray[numpy.int32], dict(shape=(None,), order='C', device='cpu', writable=False)], items: Annotated[NDArray[numpy.int32], dict(shape=(None,), order='C', device='cpu', writable=False)], ratings: Annotated[NDArray[numpy.float32], dict(shape=(None,), order='C', device='cpu', writable=False)], n_users: int, n_items: int) -> None: ...

def write_text(path: str, users: Annotated[NDArray[numpy.int32], dict(shape=(None,), order='C', device='cpu', writable=False)], items: Annotated[NDArray[numpy.int32], dict(shape=(None,), order='C', device='cpu', writable=False)], ratings: Annotated[NDArray[numpy.float32], dict(shape=(None,), order='C', device='cpu', writable=False)], n_users: int, n_items: int) -> None: ...

def synthetic(name: str, scale: float = 1.0, seed: int = 42, threads: int = 0) -> tuple: ...

def synthetic_names() -> list[str]: ...

def parse_synthetic_spec(arg: str, /) -> object: ...

def save_model(dir: str, P: Annotated[NDArray[numpy.float32], dict(shape=(None, None), order='C', device='cpu', writable=False)], Q: Annotated[NDArray[numpy.float32], dict(shape=(None, None), order='C', device='cpu', writable=False)], model_json: str) -> None: ...

def load_model(arg: str, /) -> tuple: ...

def reorder(users: Annotated[NDArray[numpy.int32], dict(shape=(None,), order='C', device='cpu', writable=False)], items: Annotated[NDArray[numpy.int32], dict(shape=(None,), order='C', device='cpu', writable=False)], n_users: int, n_items: int, user_groups: int, item_groups: int) -> dict: ...

def split_groups(arg0: Annotated[NDArray[numpy.int64], dict(shape=(None,), order='C', device='cpu', writable=False)], arg1: int, /) -> object: ...

def init_factors(n: int, k: int, std: float, seed: int, side: str) -> object:
    """Initial factors of ids 0..n-1, exactly as training starts."""

def visit_order(users: Annotated[NDArray[numpy.int32], dict(shape=(None,), order='C', device='cpu', writable=False)], items: Annotated[NDArray[numpy.int32], dict(shape=(None,), order='C', device='cpu', writable=False)], n_users: int, n_items: int, order: str, epochs: int, threads: int = 1, k: int = 128, half: bool = False, seed: int = 42) -> object: ...

def qerror(grads: Annotated[NDArray[numpy.float32], dict(shape=(None, None), order='C', device='cpu', writable=False)], group: Annotated[NDArray[numpy.int32], dict(shape=(None,), order='C', device='cpu', writable=False)], groups: int) -> object:
    """Eq. 4 q-error per group of the given gradient samples (-1: none)."""

def switch_epochs(qerror: Annotated[NDArray[numpy.float64], dict(shape=(None, None), order='C', device='cpu', writable=False)], threshold: float) -> object:
    """Switching rule of g-switching on a sequence of q-error measurements."""

def sr_words(seed: int, epoch: int, u: int, i: int, k: int) -> tuple:
    """Random words of the stochastic FP16 stores of one update."""

def half_round(x: Annotated[NDArray[numpy.float32], dict(shape=(None,), order='C', device='cpu', writable=False)], mode: str = 'nearest', seed: int = 0) -> object:
    """Software FP16 rounding of the core (for tests)."""

def half_round_words(x: Annotated[NDArray[numpy.float32], dict(shape=(None,), order='C', device='cpu', writable=False)], words: Annotated[NDArray[numpy.uint32], dict(shape=(None,), order='C', device='cpu', writable=False)]) -> object:
    """Stochastic FP16 rounding with the given random words."""
