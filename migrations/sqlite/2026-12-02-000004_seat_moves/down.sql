DROP TABLE seat_moves_daily;
