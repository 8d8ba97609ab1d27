-- A flush adds usage to call cost totals by row id, tens of thousands of rows on a live
-- fleet. Room left in each page lets PostgreSQL update such a row in place (a HOT update:
-- no new entry in any of the calls' nine indexes, since none covers the cost columns).
-- Pages written from now on keep it; existing ones fill as before.
ALTER TABLE calls SET (fillfactor = 70);
