import sys

from textlstm.cli import main

sys.exit(main())
