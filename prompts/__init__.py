"""Prompt templates (``templates/*.j2``, package data) and their one sandboxed rendering environment."""

from cotdistill.prompts.library import (
    BM25,
    KINDS,
    VARIABLES,
    PromptLibrary,
    PromptTooLong,
    TemplateError,
    TemplateInfo,
    gold_answer_json,
    select_demos,
    template_variables,
)

__all__ = [
    "BM25",
    "KINDS",
    "VARIABLES",
    "PromptLibrary",
    "PromptTooLong",
    "TemplateError",
    "TemplateInfo",
    "gold_answer_json",
    "select_demos",
    "template_variables",
]
