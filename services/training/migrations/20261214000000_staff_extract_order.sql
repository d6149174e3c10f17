-- Nightly extracts read staff by when they last changed, oldest first (ListStaff with
-- `order_by = "update_time"`), a page at a time along this index, whatever the register's size.
CREATE INDEX staff_update_time ON training.staff (update_time, employee_number);
