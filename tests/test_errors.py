"""The one-line form of an exception that every user-facing error message is built from."""

from hpsearch.errors import first_line


def test_first_line_of_a_message_is_its_first_line_stripped_and_cut_at_the_limit():
    assert first_line(ValueError("\n  disk full\nsecond line")) == "disk full"
    assert first_line(ValueError("x" * 400)) == "x" * 300
    assert first_line(ValueError("x" * 400), limit=10) == "x" * 10


def test_an_exception_without_a_message_is_named_by_its_type():
    # str(exc).splitlines()[0], used before at several sites, raises IndexError here.
    assert first_line(ConnectionResetError()) == "ConnectionResetError"
    assert first_line(RuntimeError("   ")) == "RuntimeError"
