"""`python -m lib.sample`: write text with a trained checkpoint (see lib.cli)."""

if __name__ == "__main__":
    from lib.terminal import run_command, starting

    with starting():  # Ctrl-C while torch is imported: one line, no traceback
        from lib.cli import sample_main
    run_command(sample_main, "python -m lib.sample")
