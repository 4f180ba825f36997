"""`python -m lib.sample`: write text with a trained checkpoint (see lib.cli)."""

if __name__ == "__main__":
    from lib.cli import sample_main

    sample_main()
