"""`train()` reads top to bottom as named stages (issue 24 item 4): each function of the trainer stays short, and
`train` runs the stages in their order. The behaviour itself is guarded by test_training.py, test_fault_injection.py
and the other training tests."""

import ast
import inspect

import tvr.training.trainer as trainer

STAGES = ("set_up", "train_epoch", "end_epoch", "save_final")
MAX_LINES = 60  # a stage fits on a screen, docstring included


def test_every_function_of_the_trainer_fits_on_a_screen():
    tree = ast.parse(inspect.getsource(trainer))
    lengths = {node.name: node.end_lineno - node.lineno + 1 for node in tree.body if isinstance(node, ast.FunctionDef)}
    assert {name: length for name, length in lengths.items() if length > MAX_LINES} == {}


def test_train_runs_the_named_stages_in_order():
    calls = sorted((node.lineno, node.func.id) for node in ast.walk(ast.parse(inspect.getsource(trainer.train)))
                   if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in STAGES)
    assert [name for _, name in calls] == list(STAGES)
