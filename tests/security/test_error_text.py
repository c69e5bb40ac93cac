"""Library error text is cut down before it reaches a problem document: no paths, nothing model code chose."""

from __future__ import annotations

from engine.errortext import brief, summary


def test_parser_messages_keep_their_first_line_without_server_paths() -> None:
    error = ValueError("Load model from /srv/modelpress/var/job-1/upload.bin failed: bad proto\nsecond line")

    text = brief(error)

    assert text == "ValueError: Load model from <path> failed: bad proto"


def test_errors_raised_while_model_code_ran_keep_only_type_and_real_operators() -> None:
    error = RuntimeError(
        "Exporting the operator 'aten::from_file' failed; aten::mp_Secret0123 read: CANARY-1234 from /var/x"
    )

    text = summary(error)

    assert text == "RuntimeError (operators: aten::from_file)"
