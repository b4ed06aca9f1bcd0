"""What each page shows, one module per page, built on drift.report's verdicts and read at one `now`.
Nothing here writes; views stay thin by asking these functions and rendering what they return."""
