package db

// TakenSlugs is the statement that reads the slugs taken under a base name.
const TakenSlugs = takenSlugs
