-- mutation_log can be archived: `indexpilot archive --older-than` moves old
-- rows, unchanged (same id, same columns), into mutation_log_archive. It is
-- the only thing that removes rows from mutation_log.
-- Same columns in the same order as mutation_log (mutation_log_all below
-- relies on it); NOT NULL comes along, the id sequence does not.
create table indexpilot.mutation_log_archive (like indexpilot.mutation_log including defaults);
alter table indexpilot.mutation_log_archive alter column id drop default, add primary key (id);
create index mutation_log_archive_occurred_at on indexpilot.mutation_log_archive (occurred_at);
create index mutation_log_archive_recommendation on indexpilot.mutation_log_archive (recommendation_id, id);

-- Lineage ids (parent_id, last_log_id) may now name a row that lives in the
-- archive, so they can no longer be foreign keys to mutation_log alone. Ids
-- stay unique across both tables (one sequence); mutation_log_all reads both.
do $$
declare
    c record;
begin
    for c in select conrelid::regclass as tbl, conname
               from pg_constraint
              where contype = 'f' and confrelid = 'indexpilot.mutation_log'::regclass
    loop
        execute format('alter table %s drop constraint %I', c.tbl, c.conname);
    end loop;
end
$$;

create view indexpilot.mutation_log_all as
    select * from indexpilot.mutation_log
    union all
    select * from indexpilot.mutation_log_archive;
