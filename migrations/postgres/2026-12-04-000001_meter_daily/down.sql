DROP TABLE meter_issued_daily;
