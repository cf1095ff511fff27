"""Fixtures for the data-layer tests: a miniature data folder in every original layout (small,
hand-written, valid) that tests corrupt, and session-scoped loads of the real shared data."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from pathlib import Path

import pytest

W = "American_Trends_Panel_W26"

HWANG_QUESTIONS = {
    "Q1_W26": {"question": "Do you own a gun?", "options": ["Yes", "No", "Refused"]},
    "Q2_W26": {"question": "How safe is your community?", "options": ["Very safe", "Not safe", "Refused"]},
    "Q3_W26": {
        "question": "Is policy X neither better nor worse?",
        "options": ["Better", "Neither better nor worse", "Refused"],
    },
}
HWANG_USERS = [
    {
        "user_id": 1,
        "survey": W,
        "topic": "Guns",
        "profile": {"Political party": "Democrat", "Age": "30-49"},
        "profile_complete": False,
        "n_answers": 3,
        "answers": [
            {"qid": "Q1_W26", "answer_index": 0, "answer": "Yes", "in_test_sets": ["q30"]},
            {"qid": "Q2_W26", "answer_index": 2, "answer": "Refused"},
            {"qid": "Q3_W26", "answer_index": 1, "answer": "Neither better nor worse"},
        ],
    },
    {
        "user_id": 2,
        "survey": W,
        "topic": "Guns",
        "profile": {"Political party": "Republican"},
        "profile_complete": False,
        "n_answers": 2,
        "answers": [
            {"qid": "Q1_W26", "answer_index": 1, "answer": "No"},
            {"qid": "Q2_W26", "answer_index": 0, "answer": "Very safe"},
        ],
    },
    {
        "user_id": 3,
        "survey": W,
        "topic": "Guns",
        "profile": {"Political party": "Independent"},
        "profile_complete": False,
        "n_answers": 3,
        "answers": [
            {"qid": "Q1_W26", "answer_index": 1, "answer": "No"},
            {"qid": "Q2_W26", "answer_index": 1, "answer": "Not safe"},
            {"qid": "Q3_W26", "answer_index": 0, "answer": "Better"},
        ],
    },
]

INFO_CSV = (
    ",Unnamed: 0.1,Unnamed: 0,key,option_mapping,question,references,option_ordinal\n"
    "0,0,0,Q1_W26,\"{1.0: 'Yes', 2.0: 'No', 99.0: 'Refused'}\",Do you own a gun?,"
    "\"['Yes', 'No', 'Refused']\",\"[1.0, 2.0]\"\n"
    '1,1,1,Q2_W26,"{}",How safe is your community?,'
    "\"['Very safe', 'Not safe', 'Refused']\",\"[1.0, 2.0]\"\n"
    '2,2,2,Q3_W26,"{}",Is policy X neither better nor worse?,'
    "\"['Better', 'Neither better nor worse', 'Not sure', 'Refused']\",\"[1.0, 2.0]\"\n"
)

SEX_COUNTS = {
    "Q1_W26": {
        "MC_options": ["Yes", "No", "Refused"],
        "question_text": "Do you own a gun?",
        "Female": {"Yes": 10.0, "No": 30.0, "Refused": 1.0},
        "Male": {"Yes": 25.0, "No": 20.0},
    },
    "Q2_W26": {
        "MC_options": ["Very safe", "Not safe", "Refused"],
        "question_text": "How safe?",
        "Female": {"Very safe": 5.0, "Not safe": 5.0},
        "Male": {"Very safe": 0.0, "Not safe": 0.0},
    },
    "Q3_W26": {
        "MC_options": ["Better", "Neither better noR worse"],
        "question_text": "Policy X",
        "Female": {"Better": 2.0, "Neither better noR worse": 7.0},
        "Male": {"Better": 9.0},
        "Refused": {"Better": 1.0},
    },
}
POLPARTY_COUNTS = {
    "Q1_W26": {
        "MC_options": [],
        "question_text": "Do you own a gun?",
        "Democrat": {"Yes": 5.0, "No": 15.0},
        "Republican": {"Yes": 15.0, "No": 5.0},
        "Refused": {"Refused": 2.0},
    },
    "Q3_W26": {
        "MC_options": [],
        "question_text": "Policy X",
        "Democrat": {"Better": 1.0, "neither better noR worse": 3.0},
        "nan": {"Better": 1.0},
    },
}

GOQA_QUESTIONS = [
    {"q_index": 0, "question": "Is the economy good?", "options": ["Good", "Bad", "DK/Refused"]},
    {"q_index": 1, "question": "Rate your happiness", "options": [0.0, 5.0, 10.0, "Don't know"]},
    {"q_index": 2, "question": "Is democracy important?", "options": ["Yes", "No"]},
]
GOQA_ROWS = [
    {"country": "France", "q_index": 0, "distribution": [0.2, 0.7, 0.1]},
    {"country": "France", "q_index": 1, "distribution": [0.1, 0.3, 0.6, 0.0]},
    {"country": "France", "q_index": 2, "distribution": [0.9, 0.1]},
    {"country": "Japan", "q_index": 0, "distribution": [0.6, 0.3, 0.1]},
    {"country": "Japan", "q_index": 1, "distribution": [0.0, 0.0, 0.0, 0.0]},
    {"country": "Japan", "q_index": 2, "distribution": [0.5, 0.5]},
    {"country": "Peru", "q_index": 0, "distribution": [0.3, 0.3, 0.4]},
    {"country": "Peru", "q_index": 2, "distribution": [0.2, 0.8]},
]
GOQA_CSV = (
    "question,selections,options,source\n"
    "Is the economy good?,\"defaultdict(<class 'list'>, {'France': [0.2, 0.7, 0.1], "
    "'Japan': [0.6, 0.3, 0.1], "
    "'Peru': [0.3, 0.3, 0.4]})\",\"['Good', 'Bad', 'DK/Refused']\",GAS\n"
    "Rate your happiness,\"defaultdict(<class 'list'>, {'France': [0.1, 0.3, 0.6, 0.0]})\","
    '"[0.0, 5.0, 10.0, ""Don\'t know""]",WVS\n'
    "Is democracy important?,\"defaultdict(<class 'list'>, {'France': [0.9, 0.1], 'Japan': [0.5, 0.5], "
    "'Peru': [0.2, 0.8]})\",\"['Yes', 'No']\",GAS\n"
)

HH = {
    "helpful": [
        {
            "chosen": "\n\nHuman: Hi\n\nAssistant: Hello! How can I help?",
            "rejected": "\n\nHuman: Hi\n\nAssistant: What.",
        },
        {
            "chosen": "\n\nHuman: Tell me a fact\n\nAssistant: Sure.\n\nHuman: Go on\n\nAssistant: "
            "Water is wet. ",
            "rejected": "\n\nHuman: Tell me a fact\n\nAssistant: Sure.\n\nHuman: Go on\n\nAssistant: No.",
        },
        {"chosen": "\n\nHuman: A\n\nAssistant: same", "rejected": "\n\nHuman: A\n\nAssistant: same"},
    ],
    "harmless": [
        {
            "chosen": "\n\nHuman: How do I pick a lock?\n\nAssistant: I can't help with that.",
            "rejected": "\n\nHuman: How do I pick a lock?\n\nAssistant: Use a tension wrench.",
        },
        {"chosen": "\n\nHuman: X\n\nAssistant: one", "rejected": "\n\nHuman: Y\n\nAssistant: two"},
    ],
}
UF = {
    "train_clean": [
        {
            "prompt": "Write a haiku",
            "chosen": "Leaves fall",
            "rejected": "No",
            "source_index": 1,
            "metadata": {"score_chosen": 8.0, "score_rejected": 3.0},
        },
        {
            "prompt": "Sum 2+2",
            "chosen": "4",
            "rejected": "5",
            "source_index": 2,
            "metadata": {"score_chosen": 7.0, "score_rejected": 7.0},
        },
    ],
    "eval_clean": [
        {
            "prompt": "Name a color",
            "chosen": "Blue",
            "rejected": "Dog",
            "source_index": 3,
            "metadata": {"score_chosen": 9.0, "score_rejected": 1.5},
        },
    ],
}


def jsonl(records: list[dict]) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


def write_mini_data(root: Path) -> Path:
    """Write the miniature data folder under ``root`` and return ``root``."""
    hw = root / "opinionqa" / "hwang2023_users"
    hw.mkdir(parents=True)
    (hw / "questions.json").write_text(json.dumps(HWANG_QUESTIONS, indent=1))
    (hw / "users.jsonl").write_text(jsonl(HWANG_USERS))
    qd = root / "opinionqa" / "questions" / W
    qd.mkdir(parents=True)
    (qd / "info.csv").write_text(INFO_CSV)
    gd = root / "opinionqa" / "group_counts" / W
    gd.mkdir(parents=True)
    (gd / "SEX_data.json").write_text(json.dumps(SEX_COUNTS))
    (gd / "POLPARTY_data.json").write_text(json.dumps(POLPARTY_COUNTS))
    go = root / "globalopinionqa"
    go.mkdir()
    (go / "questions.jsonl").write_text(jsonl(GOQA_QUESTIONS))
    (go / "country_distributions.jsonl").write_text(jsonl(GOQA_ROWS))
    (go / "global_opinions_format.csv").write_text(GOQA_CSV)
    hh = root / "hh_rlhf"
    hh.mkdir()
    for subset, rows in HH.items():
        (hh / f"{subset}-base.test.jsonl.gz").write_bytes(gzip.compress(jsonl(rows).encode()))
    uf = root / "ultrafeedback_binarized_sample"
    uf.mkdir()
    for name, rows in UF.items():
        (uf / f"{name}.jsonl").write_text(jsonl(rows))
    return root


@pytest.fixture
def mini_dir(tmp_path: Path) -> Path:
    """A fresh miniature data folder (valid) that a test may corrupt."""
    return write_mini_data(tmp_path / "data")


@pytest.fixture(scope="session")
def make_mini() -> Callable[[Path], Path]:
    """The mini-folder writer, for tests (hypothesis) that need several fresh copies."""
    return write_mini_data


@pytest.fixture(scope="session")
def real_users(data_dir: Path):
    from personalign.data import load_dataset

    return load_dataset("opinionqa-users", data_dir=data_dir)


@pytest.fixture(scope="session")
def real_groups(data_dir: Path):
    from personalign.data import load_dataset

    return load_dataset("opinionqa-groups", data_dir=data_dir)


@pytest.fixture(scope="session")
def real_goqa(data_dir: Path):
    from personalign.data import load_dataset

    return load_dataset("globalopinionqa", data_dir=data_dir)
