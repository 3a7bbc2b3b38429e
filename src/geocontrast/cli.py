"""Argument types shared by the command-line entry points the workflow's rules call."""

from __future__ import annotations

import argparse
import json


def json_object(text: str) -> dict:
    """argparse ``type=`` for JSON-object arguments (``--params-json '{...}'``); errors name the argument."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise argparse.ArgumentTypeError(f"not valid JSON ({error})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"must be a JSON object, got {type(value).__name__}")
    return value
