/*
 * MongoTestServer — the MongoDB-protocol server of dtmq's tests and benchmarks:
 * mongo-java-server on its H2 MVStore file backend, bound to one address.
 *
 *   java -cp CLASSES:LIBS/* MongoTestServer HOST PORT FILE
 *
 * Its guarded single-document updates are atomic (findAndModify, update and
 * insert hold the collection's lock), which is what dtmq's MongoDB store needs;
 * tests/store/conformance.c proves it with racing writers. It has no sessions.
 * SIGTERM closes the MVStore file cleanly (a restart finds every write);
 * SIGKILL may lose the last second (MVStore's background commit), which no
 * test relies on.
 */
import de.bwaldvogel.mongo.MongoServer;
import de.bwaldvogel.mongo.backend.h2.H2Backend;

public final class MongoTestServer {
    public static void main(String[] args) throws Exception {
        if (args.length != 3) {
            System.err.println("usage: MongoTestServer HOST PORT FILE");
            System.exit(2);
        }
        H2Backend backend = new H2Backend(args[2]);
        MongoServer server = new MongoServer(backend);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            server.shutdown();
            backend.close();
        }));
        server.bind(args[0], Integer.parseInt(args[1]));
        Thread.currentThread().join();
    }
}
