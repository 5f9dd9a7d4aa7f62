from opendots.cli.main import main

main()
