from vnehr.submissions.synth import main

raise SystemExit(main())
