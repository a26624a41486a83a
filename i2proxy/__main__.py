from i2proxy.cli import main

raise SystemExit(main())
