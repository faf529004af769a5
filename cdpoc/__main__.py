"""`python -m cdpoc` and the `cdpoc` command: the Ctrl-C policy first, then the (slow) imports, so that
a Ctrl-C while Python is still loading boto3 also ends with the message and exit code 130."""

from cdpoc import interrupts


def main() -> None:
    def cli() -> None:
        from cdpoc.cli import app

        app()

    interrupts.run(cli)


if __name__ == "__main__":
    main()
