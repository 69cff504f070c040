"""The jaxseg command line (the same as the `jaxseg` command of the installed package):

  python experiments/main.py --config configs/scannet_svc.py [--config.a.b=value ...] [--resume]

See jaxseg/cli.py and README.md.
"""

from jaxseg import cli

if __name__ == "__main__":
  cli.run()
