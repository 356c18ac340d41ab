"""Write the demo shop's database (customers and orders, the same rows for the same seed).

Usage: python scripts/make_shop_db.py OUT.sqlite [--seed 7]
"""

import argparse

from voiceagent.dialogue.shop import create_demo_database


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="the SQLite file to write (replaced if it exists)")
    parser.add_argument("--seed", type=int, default=7, help="the random seed of the demo data")
    args = parser.parse_args()
    print(create_demo_database(args.out, seed=args.seed))


if __name__ == "__main__":
    main()
