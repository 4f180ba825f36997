"""`python -m lib.train`: train the course's GPT from the command line (see lib.cli).

The engine itself is lib.trainer; this file only starts the command line, so running it as a
module never imports it a second time.
"""

if __name__ == "__main__":
    from lib.terminal import run_command, starting

    with starting():  # Ctrl-C while torch is imported: one line, no traceback
        from lib.cli import train_main
    run_command(train_main, "python -m lib.train")
