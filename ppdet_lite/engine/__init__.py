"""Training engine: a small loop (``Trainer``) and its hooks (``callbacks``)."""

from .callbacks import Callback, ComposeCallback, EMAUpdater, LRStepper, StopTraining
from .checkpointer import Checkpointer
from .log_printer import LogPrinter
from .loss_guard import LossGuard
from .stats import TrainingStats
from .trainer import Trainer

__all__ = ['Trainer', 'Callback', 'ComposeCallback', 'LRStepper', 'EMAUpdater', 'StopTraining',
           'Checkpointer', 'LogPrinter', 'LossGuard', 'TrainingStats']
