from vnehr.cli import main

main()
