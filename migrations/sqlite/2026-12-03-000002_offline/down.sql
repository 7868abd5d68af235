DROP TABLE offline_exchanges;
