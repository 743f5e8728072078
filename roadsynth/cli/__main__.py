import sys

from roadsynth.cli import main

sys.exit(main())
