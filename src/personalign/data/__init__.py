"""The data layer: domain records, dataset loaders (registered by name), the project's own format,
per-user splits, summary statistics and population references.

Typical use::

    from personalign.data import load_dataset, split_users
    users = load_dataset("opinionqa-users")          # a UserBase
    for split in split_users(users, k=15, seed=0):   # one UserSplit per user
        ...
"""

from personalign.data.datasets import DATASETS, DatasetLoader, load_dataset, load_preference_pairs
from personalign.data.errors import DataError, DroppedRecord, InsufficientDataError, SkippedRecord
from personalign.data.native import FORMAT_VERSION, load_userbase, save_preference_pairs, save_userbase
from personalign.data.preferences import PreferenceData, prompt_split
from personalign.data.reference import leave_one_out_reference, opinionqa_population_reference
from personalign.data.report import LoadReport, report_of
from personalign.data.split import select_users, split_user, split_users
from personalign.data.stats import UserBaseStats, userbase_stats
from personalign.data.types import (
    LabeledQuestion,
    Opinion,
    PreferencePair,
    PreferenceUser,
    Profile,
    Question,
    User,
    UserBase,
    UserSplit,
)

__all__ = [
    "DATASETS",
    "FORMAT_VERSION",
    "DataError",
    "DatasetLoader",
    "DroppedRecord",
    "InsufficientDataError",
    "LabeledQuestion",
    "LoadReport",
    "Opinion",
    "PreferenceData",
    "PreferencePair",
    "PreferenceUser",
    "Profile",
    "Question",
    "SkippedRecord",
    "User",
    "UserBase",
    "UserBaseStats",
    "UserSplit",
    "leave_one_out_reference",
    "load_dataset",
    "load_preference_pairs",
    "load_userbase",
    "opinionqa_population_reference",
    "prompt_split",
    "report_of",
    "save_preference_pairs",
    "save_userbase",
    "select_users",
    "split_user",
    "split_users",
    "userbase_stats",
]
