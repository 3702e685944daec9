import sys

from mobexport.cli import main

sys.exit(main())
