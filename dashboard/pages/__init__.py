"""What each page shows, one module per page, built on drift.verdicts' rows and read at one `now`.
Nothing here writes; views stay thin by asking these functions and rendering what they return."""
