"""The course library."""

# Which course this `lib` is: the Colab set-up cell (book/_ext/colab.py) tells it from any other
# package named `lib` by this name.
COURSE = "how-a-gpt-learns-to-write"
