"""Result collection, statistics, tables and figures: reads run result files only."""
