\set id random(1, 100000)
SELECT v FROM kv WHERE id = :id;
