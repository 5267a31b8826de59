from claresia_sync.cli import main

main()
